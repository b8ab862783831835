package main

import (
	"context"
	"log/slog"

	"github.com/tagihan/billing/internal/postgres"
)

// openDatabase finds and opens the engine's database (SPEC §2). The returned
// function closes it and, when this process started the private cluster,
// stops the cluster.
func openDatabase(ctx context.Context, cfg config, log *slog.Logger) (*postgres.DB, func(), error) {
	found, err := postgres.Discover(ctx, postgres.DiscoverOptions{
		URL:        cfg.DatabaseURL,
		ClusterDir: cfg.clusterDir(),
		Logger:     log,
	})
	if err != nil {
		return nil, nil, err
	}
	stopCluster := func() {
		if found.Cluster == nil {
			return
		}
		ours := found.Cluster.StartedHere()
		if err := found.Cluster.Stop(context.WithoutCancel(ctx)); err != nil {
			log.Error("stop the private PostgreSQL cluster", "error", err.Error())
		} else if ours && !found.Cluster.StartedHere() {
			log.Info("stopped the private PostgreSQL cluster")
		}
	}
	db, err := postgres.Open(ctx, found.URL, cfg.DBMaxConns)
	if err != nil {
		stopCluster()
		return nil, nil, err
	}
	return db, func() { db.Close(); stopCluster() }, nil
}

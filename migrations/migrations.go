// Package migrations owns the database schema: the engine's SQL migrations,
// embedded from sql/ and applied by bun's migrator, and River's own
// migrations, applied by rivermigrate. Both run from one entry point under a
// PostgreSQL advisory lock, so that several engine processes starting at once
// migrate exactly once.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

//go:embed sql/*.sql
var files embed.FS

// advisoryLockKey is the pg_advisory_lock key held while migrating
// ("billing" in ASCII).
const advisoryLockKey int64 = 0x62696c6c696e67

const (
	tableName      = "engine_migrations"
	locksTableName = "engine_migration_locks"
)

// Migrator applies and reports the engine's and River's migrations.
type Migrator struct {
	pool  *pgxpool.Pool
	bun   *migrate.Migrator
	river *rivermigrate.Migrator[pgx.Tx]
}

// New returns a Migrator for the database behind pool and db (the same
// database, opened twice as internal/postgres does).
func New(pool *pgxpool.Pool, db *bun.DB) (*Migrator, error) {
	ms := migrate.NewMigrations()
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		return nil, err
	}
	if err := ms.Discover(sub); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	rm, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	bm := migrate.NewMigrator(db, ms,
		migrate.WithTableName(tableName),
		migrate.WithLocksTableName(locksTableName),
		migrate.WithMarkAppliedOnSuccess(true))
	return &Migrator{pool: pool, bun: bm, river: rm}, nil
}

// Applied lists what one Up or Down changed, in the order it happened, as
// "river 6" or "engine 20261121000001_foundation".
type Applied []string

// Up applies every pending migration: River's first (the engine's tables
// never depend on River's, but jobs are inserted next to engine rows), then
// the engine's, as one group.
func (m *Migrator) Up(ctx context.Context) (Applied, error) {
	var done Applied
	err := m.withLock(ctx, func() error {
		res, err := m.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return fmt.Errorf("river migrations: %w", err)
		}
		for _, v := range res.Versions {
			done = append(done, "river "+strconv.Itoa(v.Version))
		}
		if err := m.bun.Init(ctx); err != nil {
			return fmt.Errorf("engine migrations table: %w", err)
		}
		group, err := m.bun.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("engine migrations: %w", err)
		}
		for _, mig := range group.Migrations {
			done = append(done, "engine "+migrationName(mig))
		}
		return nil
	})
	return done, err
}

// Down rolls back the last group of engine migrations. With all, it rolls
// back every engine migration and then removes River's schema too, leaving
// the database empty of the engine.
func (m *Migrator) Down(ctx context.Context, all bool) (Applied, error) {
	var done Applied
	err := m.withLock(ctx, func() error {
		if err := m.bun.Init(ctx); err != nil {
			return err
		}
		for {
			group, err := m.bun.Rollback(ctx)
			if err != nil {
				return fmt.Errorf("engine migrations: %w", err)
			}
			for _, mig := range group.Migrations {
				done = append(done, "engine "+migrationName(mig))
			}
			if !all || group.IsZero() {
				break
			}
		}
		if !all {
			return nil
		}
		res, err := m.river.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
		if err != nil {
			return fmt.Errorf("river migrations: %w", err)
		}
		for _, v := range res.Versions {
			done = append(done, "river "+strconv.Itoa(v.Version))
		}
		if _, err := m.pool.Exec(ctx, "DROP TABLE IF EXISTS "+tableName+", "+locksTableName); err != nil {
			return err
		}
		return nil
	})
	return done, err
}

// Migration is one migration and whether the database has it.
type Migration struct {
	Kind    string // "river" or "engine"
	Name    string
	Applied bool
}

// Status lists every known migration, River's first, and whether each is
// applied. It changes nothing in the database.
func (m *Migrator) Status(ctx context.Context) ([]Migration, error) {
	var out []Migration
	existing, err := m.river.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	have := map[int]bool{}
	for _, v := range existing {
		have[v.Version] = true
	}
	for _, v := range m.river.AllVersions() {
		out = append(out, Migration{Kind: "river", Name: fmt.Sprintf("%03d_%s", v.Version, v.Name), Applied: have[v.Version]})
	}
	var exists bool
	if err := m.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", tableName).Scan(&exists); err != nil {
		return nil, err
	}
	var ms migrate.MigrationSlice
	if exists {
		ms, err = m.bun.MigrationsWithStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("engine migrations: %w", err)
		}
	} else {
		ms, err = m.bun.MissingMigrations(ctx)
		if err != nil {
			ms = nil
			for _, name := range engineNames() {
				ms = append(ms, migrate.Migration{Name: name})
			}
		}
	}
	for _, mig := range ms {
		out = append(out, Migration{Kind: "engine", Name: migrationName(mig), Applied: mig.IsApplied()})
	}
	return out, nil
}

// Pending returns how many known migrations the database lacks.
func (m *Migrator) Pending(ctx context.Context) (int, error) {
	all, err := m.Status(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mig := range all {
		if !mig.Applied {
			n++
		}
	}
	return n, nil
}

func (m *Migrator) withLock(ctx context.Context, f func() error) error {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", advisoryLockKey); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", advisoryLockKey)
	}()
	return f()
}

// migrationName is a migration's file name without its suffixes, such as
// "20261121000001_foundation".
func migrationName(m migrate.Migration) string {
	if m.Comment == "" {
		return m.Name
	}
	return m.Name + "_" + m.Comment
}

// engineNames lists the engine's migration names (the file names up to the
// first dot), sorted.
func engineNames() []string {
	entries, _ := files.ReadDir("sql")
	seen := map[string]bool{}
	var names []string
	for _, e := range entries {
		name := e.Name()
		for i := range name {
			if name[i] == '.' {
				name = name[:i]
				break
			}
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Fingerprint identifies the schema that Up produces: a hash of every engine
// migration file and of River's migration versions. Tests name their
// template database after it, so a changed migration builds a new template.
func Fingerprint() string {
	h := sha256.New()
	entries, _ := files.ReadDir("sql")
	for _, e := range entries {
		b, _ := files.ReadFile("sql/" + e.Name())
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	rm, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err == nil {
		for _, v := range rm.AllVersions() {
			fmt.Fprintf(h, "river %d %s\n", v.Version, v.SQLUp)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"
)

// config is everything the engine reads from the environment. Every
// variable is documented in docs/operations.md.
type config struct {
	// DatabaseURL is DATABASE_URL; empty means discover (SPEC §2).
	DatabaseURL string
	// HTTPAddr is HTTP_ADDR, the API's listen address. Defaults to
	// "127.0.0.1:8080".
	HTTPAddr string
	// DataDir is DATA_DIR, where the private cluster and the sandbox key
	// file live. Defaults to ".data".
	DataDir string
	// LogLevel is LOG_LEVEL: debug, info, warn or error. Defaults to info.
	LogLevel slog.Level
	// RateLimit is RATE_LIMIT_RPS, requests per second per API key per
	// process. Defaults to 100.
	RateLimit float64
	// RateBurst is RATE_LIMIT_BURST. Defaults to 200.
	RateBurst int
	// DBMaxConns is DB_MAX_CONNS, the connection pool's size. Defaults to 20.
	DBMaxConns int32
	// Workers is WORKERS, the River jobs worked at once per process.
	// Defaults to 50.
	Workers int
	// ShutdownTimeout is SHUTDOWN_TIMEOUT, how long a stopping engine waits
	// for requests and jobs in flight. Defaults to 30s.
	ShutdownTimeout time.Duration
}

func configFromEnv(getenv func(string) string) (config, error) {
	c := config{
		DatabaseURL:     getenv("DATABASE_URL"),
		HTTPAddr:        "127.0.0.1:8080",
		DataDir:         ".data",
		LogLevel:        slog.LevelInfo,
		RateLimit:       100,
		RateBurst:       200,
		DBMaxConns:      20,
		Workers:         50,
		ShutdownTimeout: 30 * time.Second,
	}
	if v := getenv("HTTP_ADDR"); v != "" {
		c.HTTPAddr = v
	}
	if v := getenv("DATA_DIR"); v != "" {
		c.DataDir = v
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("LOG_LEVEL: must be debug, info, warn or error")
		}
	}
	var err error
	if c.RateLimit, err = floatVar(getenv, "RATE_LIMIT_RPS", c.RateLimit); err != nil {
		return c, err
	}
	if c.RateBurst, err = intVar(getenv, "RATE_LIMIT_BURST", c.RateBurst); err != nil {
		return c, err
	}
	conns, err := intVar(getenv, "DB_MAX_CONNS", int(c.DBMaxConns))
	if err != nil {
		return c, err
	}
	c.DBMaxConns = int32(conns)
	if c.Workers, err = intVar(getenv, "WORKERS", c.Workers); err != nil {
		return c, err
	}
	if v := getenv("SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("SHUTDOWN_TIMEOUT: must be a positive duration such as 30s")
		}
		c.ShutdownTimeout = d
	}
	return c, nil
}

func intVar(getenv func(string) string, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: must be a positive integer", name)
	}
	return n, nil
}

func floatVar(getenv func(string) string, name string, def float64) (float64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%s: must be a positive number", name)
	}
	return f, nil
}

func (c config) clusterDir() string { return filepath.Join(c.DataDir, "postgres") }

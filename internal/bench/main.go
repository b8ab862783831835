// Command bench measures the engine against the performance targets of
// SPEC §9, each beside a baseline measured in the same run on the same
// machine, and prints both figures and their ratio. Run it with make bench.
//
// Ingestion: N concurrent clients POST batches of 1,000 usage events to a
// real engine process (billing serve, built from this checkout), against
// PostgreSQL COPY of as many rows into the same table, in N streams.
//
// Amount fixing: 100,000 cycles due at one moment with 1,000,000 unbilled
// events, fixed by a real engine process's jobs, against a hand-written
// set-based SQL doing the same reads and writes on a copy of the data.
//
// Charging: 100,000 cycles due at one moment, charged through the sandbox
// provider by a real engine process's jobs, against River's own throughput
// on as many no-op jobs with the same number of workers.
//
// The database is DATABASE_URL's server, else the engine's own discovery;
// the benchmark uses its own database, billing_bench, recreated each run.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/migrations"
)

func main() {
	clients := flag.Int("clients", 4, "concurrent clients (and COPY streams)")
	events := flag.Int("events", 200_000, "events to ingest in each round (a multiple of clients × 1,000)")
	only := flag.String("only", "", "run only this benchmark: ingest, fix or charge")
	fixPlans := flag.Int("fix-plans", 100_000, "cycles due at one moment in the amount-fixing benchmark")
	fixEvents := flag.Int("fix-events", 1_000_000, "unbilled events in the amount-fixing benchmark")
	chargeCycles := flag.Int("charge-cycles", 100_000, "cycles due at one moment in the charging benchmark (SPEC §9)")
	chargeWorkers := flag.Int("charge-workers", 50, "River workers (WORKERS) of the charging benchmark and its baseline")
	flag.Parse()
	ctx := context.Background()
	if err := run(ctx, *only, *clients, *events, *fixPlans, *fixEvents, *chargeCycles, *chargeWorkers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, only string, clients, events, fixPlans, fixEvents, chargeCycles, chargeWorkers int) error {
	if only != "" && only != "ingest" && only != "fix" && only != "charge" {
		return fmt.Errorf("-only must be ingest, fix or charge")
	}
	found, err := postgres.Discover(ctx, postgres.DiscoverOptions{URL: os.Getenv("DATABASE_URL"), Database: "postgres",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	if found.Cluster != nil {
		defer found.Cluster.Stop(context.WithoutCancel(ctx)) //nolint:errcheck
	}
	url, err := recreate(ctx, found.URL, "billing_bench")
	if err != nil {
		return err
	}
	db, err := postgres.Open(ctx, url, int32(clients+4))
	if err != nil {
		return err
	}
	defer db.Close()
	m, err := migrations.New(db.Pool, db.Bun)
	if err != nil {
		return err
	}
	if _, err := m.Up(ctx); err != nil {
		return err
	}
	fmt.Printf("machine: %d CPUs (%s/%s), %s; PostgreSQL %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel(), serverVersion(ctx, db))

	if only == "" || only == "ingest" {
		eng, err := startEngine(ctx, url)
		if err != nil {
			return err
		}
		err = benchIngestion(ctx, db, eng, clients, events)
		eng.stop()
		if err != nil {
			return err
		}
	}
	if only == "" || only == "fix" {
		if err := benchFixing(ctx, found.URL, fixPlans, fixEvents); err != nil {
			return err
		}
	}
	if only == "" || only == "charge" {
		return benchCharging(ctx, found.URL, chargeCycles, chargeWorkers)
	}
	return nil
}

// recreate drops and creates database name on the server of url and
// returns a URL for it.
func recreate(ctx context.Context, url, name string) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return postgres.WithDatabase(url, name)
}

// engine is a billing serve process.
type engine struct {
	cmd  *exec.Cmd
	addr string
}

// engineBin is the engine built from this checkout (buildEngine), in a
// folder of its own that is also its DATA_DIR.
var engineBin string

// buildEngine builds the engine from this checkout, once per run.
func buildEngine(ctx context.Context) error {
	if engineBin != "" {
		return nil
	}
	dir, err := os.MkdirTemp("", "billing-bench-")
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "billing")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/billing").CombinedOutput(); err != nil {
		return fmt.Errorf("build the engine: %v\n%s", err, out)
	}
	engineBin = bin
	return nil
}

// startEngine starts the engine built from this checkout on a free port,
// with rate limits out of the way and env (NAME=value) added to its
// environment.
func startEngine(ctx context.Context, dbURL string, env ...string) (*engine, error) {
	if err := buildEngine(ctx); err != nil {
		return nil, err
	}
	bin, dir := engineBin, filepath.Dir(engineBin)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "HTTP_ADDR="+addr, "RATE_LIMIT_RPS=1000000", "RATE_LIMIT_BURST=1000000",
		"LOG_LEVEL=warn", "DATA_DIR="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if regexp.MustCompile(`listening on http://`).MatchString(sc.Text()) {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			return nil, fmt.Errorf("the engine exited at start")
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("the engine did not start within 60s")
	}
	return &engine{cmd: cmd, addr: addr}, nil
}

func (e *engine) stop() {
	_ = e.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = e.cmd.Process.Kill()
	}
}

// peakRSS returns the engine process's peak resident memory, from /proc.
func (e *engine) peakRSS() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "unknown"
}

// cpuTime returns the CPU time (user and system) the engine process has
// used so far, from /proc; zero when unknown.
func (e *engine) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	return ticksOf(fields, 11, 12) // utime, stime
}

// machineBusy returns the CPU time the whole machine has spent busy (not
// idle, waiting for I/O or stolen by the hypervisor) since boot, from
// /proc/stat; zero when unknown.
// Every process counts — the engine, PostgreSQL, the benchmark itself —
// so that the difference over a run, divided by the work done, is the
// cost of one unit of work on this machine, which varies much less from
// run to run than the throughput does.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0
	}
	return ticksOf(fields, 1, 2, 3, 6, 7) // user nice system (idle iowait) irq softirq (steal)
}

// ticksOf adds up the CPU times in clock ticks at fields[at...] of a
// /proc line; zero when one is not a number.
func ticksOf(fields []string, at ...int) time.Duration {
	var ticks int64
	for _, i := range at {
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const clockTicks = 100

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

func serverVersion(ctx context.Context, db *postgres.DB) string {
	var v string
	_ = db.Pool.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	c, err := configFromEnv(get)
	if err != nil || c.HTTPAddr != "127.0.0.1:8080" || c.DataDir != ".data" || c.RateLimit != 100 || c.ShutdownTimeout != 30*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	env = map[string]string{"HTTP_ADDR": ":9000", "RATE_LIMIT_RPS": "2.5", "WORKERS": "8", "LOG_LEVEL": "debug", "SHUTDOWN_TIMEOUT": "5s", "DB_MAX_CONNS": "7"}
	c, err = configFromEnv(get)
	if err != nil || c.HTTPAddr != ":9000" || c.RateLimit != 2.5 || c.Workers != 8 || c.ShutdownTimeout != 5*time.Second || c.DBMaxConns != 7 {
		t.Fatalf("set: %+v %v", c, err)
	}
	for k, v := range map[string]string{"RATE_LIMIT_RPS": "-1", "WORKERS": "many", "LOG_LEVEL": "loud", "SHUTDOWN_TIMEOUT": "soon", "DB_MAX_CONNS": "0"} {
		env = map[string]string{k: v}
		if _, err := configFromEnv(get); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: err = %v", k, v, err)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"serve", "--role=boss"}, {"migrate"}, {"migrate", "sideways"}, {"business", "create", "--name", "x", "--mode", "test"}, {"business", "create", "--mode", "live"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("billing %v: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "billing ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

// engineProcess is a billing binary running serve in a subprocess.
type engineProcess struct {
	cmd    *exec.Cmd
	addr   string
	stdout *bytes.Buffer
	stderr *bytes.Buffer
	done   chan error
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "billing")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startEngine(t *testing.T, bin string, env []string, args ...string) *engineProcess {
	t.Helper()
	e := &engineProcess{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer), done: make(chan error, 1)}
	e.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	e.cmd.Env = append(os.Environ(), env...)
	e.cmd.Stderr = e.stderr
	pipe, err := e.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			e.stdout.WriteString(line + "\n")
			if m := regexp.MustCompile(`listening on http://(\S+)`).FindStringSubmatch(line); m != nil {
				listening <- m[1]
			}
		}
		e.done <- e.cmd.Wait()
	}()
	select {
	case e.addr = <-listening:
	case err := <-e.done:
		t.Fatalf("engine exited: %v\nstdout:\n%s\nstderr:\n%s", err, e.stdout, e.stderr)
	case <-time.After(60 * time.Second):
		_ = e.cmd.Process.Kill()
		t.Fatalf("engine did not start:\n%s\n%s", e.stdout, e.stderr)
	}
	return e
}

// stop sends SIGTERM and requires a clean exit.
func (e *engineProcess) stop(t *testing.T) {
	t.Helper()
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatalf("engine exit: %v\n%s", err, e.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = e.cmd.Process.Kill()
		t.Fatal("engine did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(e.stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("no graceful stop in the log:\n%s", e.stderr)
	}
}

// TestServeAndREADMETour runs the engine as make run does, on an empty
// database, and then the README's tour, as written, against it.
func TestServeAndREADMETour(t *testing.T) {
	_, dbURL := pgtest.Fresh(t)
	bin := buildBinary(t)
	dataDir := t.TempDir()
	keyFile := filepath.Join(dataDir, "sandbox-api-key")
	env := []string{"DATABASE_URL=" + dbURL, "HTTP_ADDR=" + freeAddr(t), "DATA_DIR=" + dataDir}

	e := startEngine(t, bin, env, "--sandbox-key-file", keyFile)
	key := regexp.MustCompile(`(?m)^sk_test_[0-9A-Za-z]{43}$`).FindString(e.stdout.String())
	if key == "" || !strings.Contains(e.stdout.String(), `Created the sandbox business "Demo Utility"`) {
		t.Fatalf("no sandbox key printed:\n%s", e.stdout)
	}
	info, err := os.Stat(keyFile)
	saved, _ := os.ReadFile(keyFile)
	if err != nil || info.Mode().Perm() != 0o600 || strings.TrimSpace(string(saved)) != key {
		t.Fatalf("key file: %v, mode %v, content %q", err, info.Mode(), saved)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- tour:start -->\\s*```sh\\n(.*?)```\\s*<!-- tour:end -->").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no tour block")
	}
	// The tour is run as written, except that the binary is the one just
	// built and the engine listens on a free port.
	script := strings.ReplaceAll(string(m[1]), "./bin/billing", bin)
	script = strings.ReplaceAll(script, "127.0.0.1:8080", e.addr)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tour failed: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 8 || !strings.Contains(lines[0], `"reference_id":"PDAM-0001"`) ||
		!strings.Contains(lines[1], `"status":"PENDING"`) || !strings.HasPrefix(lines[2], `{"now":"`) ||
		lines[3] != "kwh" || lines[4] != "ACTIVE" || !strings.Contains(lines[5], `"accepted":1`) ||
		!strings.HasPrefix(lines[6], `{"now":"`) {
		t.Fatalf("tour output:\n%s", out)
	}
	// The first cycle's invoice, paid: the base fee and the reading (or, on
	// a month's last day, when cycle 1's window has closed, the base fee
	// alone, as the README says).
	paid := lines[7]
	total := `"total":213750,"amount_paid":213750`
	if now := (billing.SystemClock{}).Now().UTC(); now.AddDate(0, 0, 1).Day() == 1 {
		total = `"amount_paid":`
	}
	if strings.Count(paid, `"status":"PAID"`) != 1 || !strings.Contains(paid, `"kind":"BASE"`) || !strings.Contains(paid, `"kind":"USAGE"`) ||
		!strings.Contains(paid, total) || !strings.Contains(paid, `"number":"INV-`) {
		t.Fatalf("tour's paid invoice:\n%s", paid)
	}
	e.stop(t)

	// A restart keeps the business and says where its key is.
	e = startEngine(t, bin, env, "--sandbox-key-file", keyFile)
	if !strings.Contains(e.stdout.String(), "is in "+keyFile) || strings.Contains(e.stdout.String(), "sk_test_") {
		t.Fatalf("second start:\n%s", e.stdout)
	}
	e.stop(t)
}

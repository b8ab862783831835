package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

var errNoServerBinaries = errors.New("PostgreSQL server programs (initdb, pg_ctl) not found")

// Cluster is a private PostgreSQL cluster kept in one folder: the data in
// Dir/data, the log in Dir/postgres.log, and the server listening only on a
// unix socket in Dir (no TCP port, so it never clashes with another server).
// Its data outlives the engine; the engine that started it stops it.
type Cluster struct {
	// Dir is the cluster's folder, an absolute path.
	Dir string

	binDir      string
	socketDir   string
	cred        *syscall.Credential // set when running as root: PostgreSQL refuses to run as root
	runAs       string
	startedHere bool
}

// NewCluster prepares a private cluster in dir using the installed
// PostgreSQL server programs found on PATH or under
// /usr/lib/postgresql/*/bin (the newest version). Nothing is started yet.
func NewCluster(dir string) (*Cluster, error) {
	return newCluster(dir, nil)
}

func newCluster(dir string, binDirs []string) (*Cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	bin, err := findServerBinaries(binDirs)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: abs, binDir: bin, socketDir: abs}
	if os.Geteuid() == 0 {
		if err := c.chooseUnprivilegedUser(); err != nil {
			return nil, err
		}
	}
	// A unix socket path is limited to 107 bytes; reach a deep folder through
	// a short symbolic link in the temporary directory.
	if len(abs)+len("/.s.PGSQL.5432") > 100 {
		sum := sha256.Sum256([]byte(abs))
		c.socketDir = filepath.Join(os.TempDir(), "billing-pg-"+hex.EncodeToString(sum[:6]))
	}
	if strings.ContainsAny(c.socketDir, "'\\") {
		return nil, fmt.Errorf("private cluster folder %q: quotes and backslashes are not supported in its path", abs)
	}
	return c, nil
}

// findServerBinaries returns the first of dirs holding both pg_ctl and
// initdb; with no dirs, it searches PATH, then /usr/lib/postgresql/*/bin with
// the newest version first.
func findServerBinaries(dirs []string) (string, error) {
	if dirs == nil {
		dirs = filepath.SplitList(os.Getenv("PATH"))
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
		sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
		for _, m := range matches {
			dirs = append(dirs, filepath.Dir(m))
		}
	}
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "pg_ctl")) && isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	return "", errNoServerBinaries
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

// versionOf returns the major version in /usr/lib/postgresql/<v>/bin/pg_ctl.
func versionOf(pgctl string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(pgctl))))
	return v
}

func (c *Cluster) chooseUnprivilegedUser() error {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		c.runAs = name
		return nil
	}
	return errors.New("running as root, and there is no 'postgres' or 'nobody' user to run the private PostgreSQL cluster as (PostgreSQL refuses to run as root)")
}

// StartedHere reports whether Start started the server (rather than finding
// it already running, started by another engine process).
func (c *Cluster) StartedHere() bool { return c.startedHere }

// URL returns a connection string for database db over the cluster's socket.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("host='%s' port=5432 user=postgres dbname='%s' sslmode=disable", c.socketDir, db)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

// Start creates the cluster on first use (initdb) and starts its server
// unless it is already running. Concurrent callers, in this process or
// others, are serialised by a lock file in the folder.
func (c *Cluster) Start(ctx context.Context) error {
	// The folders above the cluster must stay reachable by the server's user.
	if err := os.MkdirAll(filepath.Dir(c.Dir), 0o755); err != nil {
		return fmt.Errorf("private cluster: %w", err)
	}
	if err := os.Mkdir(c.Dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("private cluster: %w", err)
	}
	unlock, err := lockFile(filepath.Join(c.Dir, ".lock"))
	if err != nil {
		return fmt.Errorf("private cluster: lock: %w", err)
	}
	defer unlock()

	if c.cred != nil {
		if err := c.prepareForUser(); err != nil {
			return err
		}
	}
	if c.socketDir != c.Dir {
		_ = os.Remove(c.socketDir)
		if err := os.Symlink(c.Dir, c.socketDir); err != nil {
			return fmt.Errorf("private cluster: socket link: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if out, err := c.run(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-instructions"); err != nil {
			return fmt.Errorf("private cluster: initdb: %w\n%s", err, out)
		}
	}
	if c.running(ctx) {
		return nil
	}
	out, err := c.run(ctx, "pg_ctl", "start", "-D", c.dataDir(), "-l", filepath.Join(c.Dir, "postgres.log"), "-w", "-t", "60", "-o", c.serverOptions())
	if err != nil {
		return fmt.Errorf("private cluster: pg_ctl start (see %s): %w\n%s", filepath.Join(c.Dir, "postgres.log"), err, out)
	}
	c.startedHere = true
	return nil
}

// running reports whether the cluster's server is up.
func (c *Cluster) running(ctx context.Context) bool {
	_, err := c.run(ctx, "pg_ctl", "status", "-D", c.dataDir())
	return err == nil
}

// Stop stops the server when this Cluster started it and no other client is
// connected (another engine process may still be using it); otherwise it
// leaves the server running.
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.startedHere {
		return nil
	}
	if n, err := c.otherClients(ctx); err == nil && n > 0 {
		return nil
	}
	out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir(), "-m", "fast", "-w", "-t", "60")
	if err != nil {
		return fmt.Errorf("private cluster: pg_ctl stop: %w\n%s", err, out)
	}
	c.startedHere = false
	return nil
}

// otherClients counts the client connections other than its own, giving
// connections just closed (their backends exit asynchronously) two seconds
// to go away.
// serverOptions are the postgres settings the cluster always runs with:
// no TCP, a private socket.
func (c *Cluster) serverOptions() string {
	return fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories='%s' -c unix_socket_permissions=0700 -c port=5432", c.socketDir)
}

// Restart restarts the server at once (pg_ctl restart -m fast), dropping
// every connection; tests use it to show that nothing acknowledged is lost.
func (c *Cluster) Restart(ctx context.Context) error {
	out, err := c.run(ctx, "pg_ctl", "restart", "-D", c.dataDir(), "-m", "fast", "-w", "-t", "60", "-l", filepath.Join(c.Dir, "postgres.log"), "-o", c.serverOptions())
	if err != nil {
		return fmt.Errorf("private cluster: pg_ctl restart: %w\n%s", err, out)
	}
	return nil
}

func (c *Cluster) otherClients(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	for range 20 {
		err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`).Scan(&n)
		if err != nil || n == 0 {
			return n, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n, nil
}

// run runs one of the server programs, as the unprivileged user when the
// engine runs as root, from inside the cluster folder (the programs fail
// when they cannot read their working directory).
func (c *Cluster) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, prog), args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		cmd.Env = append(cmd.Env, "HOME="+c.Dir, "USER="+c.runAs, "LOGNAME="+c.runAs)
	}
	return cmd.CombinedOutput()
}

// prepareForUser gives the cluster folder to the unprivileged user and
// checks that the user can reach it.
func (c *Cluster) prepareForUser() error {
	uid, gid := int(c.cred.Uid), int(c.cred.Gid)
	err := filepath.Walk(c.Dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
			return nil
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("private cluster: give %s to user %s: %w", c.Dir, c.runAs, err)
	}
	for dir := filepath.Dir(c.Dir); ; dir = filepath.Dir(dir) {
		info, err := os.Stat(dir)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		mode := info.Mode().Perm()
		ok := mode&0o001 != 0 || (int(st.Uid) == uid && mode&0o100 != 0) || (int(st.Gid) == gid && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("private cluster: the server runs as user %s (PostgreSQL refuses root), which cannot enter %s; "+
				"run the engine from a folder that user can reach, or set DATABASE_URL", c.runAs, dir)
		}
		if dir == "/" {
			return nil
		}
	}
}

// lockFile takes an exclusive lock on path, waiting for other holders.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Package pgtest starts real, throwaway PostgreSQL clusters for tests.
//
// pggo code runs inside the postmaster and its children (shared preload
// libraries, background workers), so the tests of pggo and of users'
// extensions must exercise a real server; a mock would not show how
// PostgreSQL loads, starts, restarts or kills that code. Each [Start] gives
// a test its own cluster: a copy of a template data directory that initdb
// made for the test binary, a private Unix socket directory and no TCP
// listener, so clusters of tests running in parallel, even from different
// test binaries, never clash. The cluster is stopped and its files removed
// when the test ends, and when the last cluster of the test binary is gone
// nothing of them is left (their files live in /dev/shm, in RAM, when there
// is room). The template is reused by content: it is kept on disk in
// $TMPDIR/pgtest-cache-UID, one per PostgreSQL installation, for every test
// process of that OS user (see cachedTemplate).
//
// PostgreSQL refuses to run as root. When the test process runs as root
// (as it does in containers and CI), pgtest runs initdb, pg_ctl and so the
// server as the "postgres" OS user, the same as "runuser -u postgres" but
// by switching credentials in the child process directly, which keeps the
// environment intact; it hands that user the directories it must write.
// The test itself keeps reading the log and connecting as root.
package pgtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/internal/build"
)

// Options configures a cluster started by [Start] or [StartE].
type Options struct {
	// PGBin is the directory holding initdb, pg_ctl and postgres; ""
	// means the one `$PGGO_PG_CONFIG --bindir` reports (pg_config on PATH
	// when PGGO_PG_CONFIG is unset).
	PGBin string
	// Preload lists the libraries for shared_preload_libraries, normally
	// absolute paths of .so files. Any character is allowed in a path.
	Preload []string
	// Settings are extra postgresql.conf settings, written after pgtest's
	// own so they can override them. Values are quoted by pgtest.
	Settings map[string]string
	// Env holds extra environment variables ("K=V") for the server
	// process, on top of the test process's environment (in which, when
	// the test runs as root, HOME, USER and LOGNAME are the postgres
	// user's).
	Env []string
	// Extensions can be installed with CREATE EXTENSION (their control
	// files and scripts) in the cluster, and their libraries are in its
	// $libdir, without writing into the system's PostgreSQL directories:
	// the cluster then runs from a private installation, a temporary tree
	// of symlinks to the system's files plus the extensions' (see
	// install.go; BinDir reports its bin directory).
	Extensions []*Extension
}

// Cluster is a running (or stopped) throwaway PostgreSQL cluster.
type Cluster struct {
	opts    Options
	bin     string
	dir     string // per-cluster directory: data/ and the log
	dataDir string
	sockDir string
	logPath string
	port    int

	mu       sync.Mutex // serializes Stop and Restart
	started  bool       // the postmaster was started at least once
	stopped  bool       // Stop succeeded and no Restart since
	shared   bool       // holds the shared directory (see acquireShared)
	template string     // the data directory copied
	install  string     // the private installation (Options.Extensions), if any
}

// startTimeout bounds pg_ctl's waits; generous because CI machines are slow.
const startTimeout = "60"

// logTailLines is how much of the server log error messages show.
const logTailLines = 60

// Start starts a cluster and registers a cleanup that stops it and removes
// its files (and the template, if no other cluster of the process remains). It fails the test, showing the server log tail, if the server
// does not start.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := StartE(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StartE is [Start] but returns the error instead of failing the test, for
// tests that expect the server not to start. The returned Cluster is never
// nil, so its Log can be inspected, and its cleanup is registered either way.
func StartE(t testing.TB, opts Options) (*Cluster, error) {
	t.Helper()
	c := &Cluster{opts: opts}
	// Registered before anything is created so a half-made cluster is
	// removed too.
	t.Cleanup(func() { c.cleanup(t) })
	return c, c.start()
}

func (c *Cluster) start() error {
	for _, kv := range c.opts.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("pgtest: Env entry %q is not K=V", kv)
		}
	}
	bin := c.opts.PGBin
	if bin == "" {
		var err error
		if bin, err = defaultBinDir(); err != nil {
			return err
		}
	}
	c.bin = bin
	run, err := runAs()
	if err != nil {
		return err
	}
	sh, err := acquireShared()
	if err != nil {
		return err
	}
	c.shared = true
	tmpl, err := sh.template(bin)
	if err != nil {
		return err
	}
	c.template = tmpl
	if c.dir, err = os.MkdirTemp(sh.dir, "c"); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if len(c.opts.Extensions) > 0 {
		// Not under c.dir: that may be in /dev/shm, which can be noexec,
		// and TMPDIR is usually the file system of the installation, so
		// postgres is hard-linked rather than copied.
		if c.install, err = os.MkdirTemp("", "pgtest-install-"); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		os.Chmod(c.install, 0o755) // the server's OS user runs from it
		if c.bin, err = privateInstall(bin, c.install, c.opts.Extensions); err != nil {
			return err
		}
	}
	if err := run.own(c.dir, 0o755); err != nil {
		return err
	}
	c.dataDir = filepath.Join(c.dir, "data")
	c.logPath = filepath.Join(c.dir, "postgres.log")
	// cp -a keeps the postgres ownership and the 0700 mode the server
	// insists on.
	if out, err := exec.Command("cp", "-a", tmpl, c.dataDir).CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: copying template data directory: %v\n%s", err, out)
	}
	// The socket path must fit in 107 bytes, so it does not live under
	// TMPDIR, which may be long.
	if c.sockDir, err = os.MkdirTemp("/tmp", "pgs"); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := run.own(c.sockDir, 0o755); err != nil {
		return err
	}
	c.port = nextPort()
	conf, err := c.config()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: writing postgresql.conf: %w", err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = true
	out, err := c.pgctl("start", "-w", "-t", startTimeout, "-D", c.dataDir, "-l", c.logPath, "-o", "")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl start failed: %v\n%s\n--- server log tail (%s) ---\n%s",
			err, bytes.TrimSpace(out), c.logPath, c.LogTail(logTailLines))
	}
	return nil
}

// config renders the lines appended to postgresql.conf; later lines win, so
// Options.Settings come last.
func (c *Cluster) config() (string, error) {
	var b strings.Builder
	set := func(name, value string) {
		fmt.Fprintf(&b, "%s = %s\n", name, quoteConfValue(value))
	}
	b.WriteString("\n# added by pggo/pgtest\n")
	set("port", strconv.Itoa(c.port))
	// No TCP: clusters of parallel tests only meet in their socket dirs.
	set("listen_addresses", "")
	set("unix_socket_directories", quoteListElements([]string{c.sockDir}))
	// The log must be the one file pg_ctl -l names, for WaitLog.
	set("logging_collector", "off")
	set("log_line_prefix", "%m [%p] %b ")
	set("fsync", "off")
	if len(c.opts.Preload) > 0 {
		set("shared_preload_libraries", quoteListElements(c.opts.Preload))
	}
	for _, name := range slices.Sorted(maps.Keys(c.opts.Settings)) {
		if !confName.MatchString(name) {
			return "", fmt.Errorf("pgtest: invalid setting name %q", name)
		}
		set(name, c.opts.Settings[name])
	}
	return b.String(), nil
}

// confName matches what postgresql.conf's lexer accepts as a setting name,
// including one-dot custom names like "pggo.workers".
var confName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// quoteConfValue quotes s as a postgresql.conf string literal: ' is doubled
// and, because the file's strings also take backslash escapes, \ and line
// breaks are escaped too.
func quoteConfValue(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`, "\n", `\n`, "\r", `\r`)
	return "'" + r.Replace(s) + "'"
}

// quoteListElements joins elements into the value of a list setting such as
// shared_preload_libraries or unix_socket_directories. PostgreSQL splits
// those on commas and trims blanks unless an element is double-quoted, so
// each element is double-quoted, with embedded " doubled.
func quoteListElements(elems []string) string {
	q := make([]string, len(elems))
	for i, e := range elems {
		q[i] = `"` + strings.ReplaceAll(e, `"`, `""`) + `"`
	}
	return strings.Join(q, ",")
}

// portSeq makes ports unique within the process; the pid spreads processes.
// Since listen_addresses is empty the port only names the socket file in a
// private directory, so a cross-process collision would still be harmless.
var portSeq atomic.Int64

func nextPort() int {
	n := int(portSeq.Add(1)) - 1
	return 20000 + (os.Getpid()%20000+n)%45000
}

// ConnString returns a libpq/pgx key-value connection string for the
// cluster's superuser and default database.
func (c *Cluster) ConnString() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", c.sockDir, c.port)
}

// Connect opens a pgx connection to the cluster, closed when the test ends.
func (c *Cluster) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.ConnString())
	if err != nil {
		t.Fatalf("pgtest: connect: %v\n--- server log tail ---\n%s", err, c.LogTail(logTailLines))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.Close(ctx)
	})
	return conn
}

// Log returns the whole server log so far ("" if there is none yet).
func (c *Cluster) Log() string {
	if c.logPath == "" {
		return ""
	}
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// LogTail returns the last n lines of the server log.
func (c *Cluster) LogTail(n int) string {
	lines := strings.SplitAfter(strings.TrimRight(c.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// LogPath returns the path of the server log file.
func (c *Cluster) LogPath() string { return c.logPath }

// WaitLog polls the server log every 20ms until re matches and returns the
// submatches of the first match. It fails the test, showing the log tail,
// if there is no match within timeout.
func (c *Cluster) WaitLog(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(c.Log()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgtest: no match for /%s/ in the server log after %v\n--- server log tail (%s) ---\n%s",
				re, timeout, c.logPath, c.LogTail(logTailLines))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CountLog returns how many times re matches in the server log so far.
func (c *Cluster) CountLog(re *regexp.Regexp) int {
	return len(re.FindAllStringIndex(c.Log(), -1))
}

// PostmasterPID returns the postmaster's pid from postmaster.pid, or 0 if
// the file does not exist (server not running). The file may be stale
// after the postmaster was killed; see [ProcessAlive].
func (c *Cluster) PostmasterPID() int {
	if c.dataDir == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	return pid
}

// Running reports whether the cluster's postmaster process is alive.
func (c *Cluster) Running() bool {
	pid := c.PostmasterPID()
	return pid > 0 && ProcessAlive(pid)
}

// ProcessAlive reports whether pid is a live process. Zombies count as
// dead: in containers whose init does not reap orphans, a killed postmaster
// (whose parent pg_ctl exited long ago) stays a zombie for good, and a plain
// kill(pid, 0) would call it alive.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if _, perr := os.Stat("/proc/self/stat"); perr != nil {
			return true // no procfs: trust kill
		}
		return false // exited since kill
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain ") ".
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// Stop stops the server with `pg_ctl stop -m mode` (smart, fast or
// immediate) and waits for it. It is idempotent, and a postmaster that is
// already dead (for instance killed by the test) counts as stopped; its
// orphaned children are left alone, since PostgreSQL makes them exit by
// themselves and tests may check exactly that.
func (c *Cluster) Stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(mode)
}

func (c *Cluster) stopLocked(mode string) error {
	if !c.started || c.stopped {
		return nil
	}
	if !c.Running() {
		c.stopped = true
		return nil
	}
	out, err := c.pgctl("stop", "-m", mode, "-w", "-t", startTimeout, "-D", c.dataDir)
	if err != nil {
		if !c.Running() { // died on its own meanwhile
			c.stopped = true
			return nil
		}
		return fmt.Errorf("pgtest: pg_ctl stop -m %s: %v\n%s", mode, err, bytes.TrimSpace(out))
	}
	c.stopped = true
	return nil
}

// Restart restarts the server (`pg_ctl restart -m fast`) with the same
// options, or starts it again if it was stopped or its postmaster died. It
// fails the test, showing the log tail, if the server does not come back.
// After the postmaster was killed, PostgreSQL refuses to start while any
// of the old children still holds the shared memory; Restart retries for
// up to 10s while that is the reason.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		t.Fatalf("pgtest: Restart of a cluster that never started")
	}
	wasKilled := c.clearStaleLocks()
	var out []byte
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		logLen := len(c.Log())
		out, err = c.pgctl("restart", "-m", "fast", "-w", "-t", startTimeout, "-D", c.dataDir, "-l", c.logPath, "-o", "")
		// The killed postmaster's children exit by themselves, but may
		// not have yet: then PostgreSQL refuses to start, and trying
		// again shortly is all there is to do.
		if err == nil || !wasKilled || time.Now().After(deadline) {
			break
		}
		if l := c.Log(); !strings.Contains(l[min(logLen, len(l)):], "is still in use") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pgtest: pg_ctl restart failed: %v\n%s\n--- server log tail (%s) ---\n%s",
			err, bytes.TrimSpace(out), c.logPath, c.LogTail(logTailLines))
	}
	c.stopped = false
}

// clearStaleLocks removes the lock files of a postmaster that died without
// shutting down, reporting whether there were any. A killed postmaster may
// linger as a zombie, which passes PostgreSQL's own kill(pid, 0) test of
// its lock files and would block the next one; it is dead, so the files
// are stale, and the socket directory is ours alone.
func (c *Cluster) clearStaleLocks() bool {
	pid := c.PostmasterPID()
	if pid <= 0 || ProcessAlive(pid) {
		return false
	}
	os.Remove(filepath.Join(c.dataDir, "postmaster.pid"))
	sock := filepath.Join(c.sockDir, fmt.Sprintf(".s.PGSQL.%d", c.port))
	os.Remove(sock + ".lock")
	os.Remove(sock)
	return true
}

// DataDir returns the cluster's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// Port returns the cluster's port; with no TCP listener it only names the
// socket file in SocketDir.
func (c *Cluster) Port() int { return c.port }

// SocketDir returns the directory holding the server's Unix socket.
func (c *Cluster) SocketDir() string { return c.sockDir }

// BinDir returns the PostgreSQL binary directory the cluster uses.
func (c *Cluster) BinDir() string { return c.bin }

// crashPatterns are the log lines PostgreSQL writes when a child's death
// makes the postmaster kill the others and reinitialize. Exit code 1 is a
// normal (restartable) exit for background workers; anything else is a crash.
var crashPatterns = []*regexp.Regexp{
	regexp.MustCompile(`terminating any other active server processes`),
	regexp.MustCompile(`was terminated by signal`),
	regexp.MustCompile(`was terminated by exception`),
	regexp.MustCompile(`exited with exit code ([2-9]|[1-9][0-9]+)\b`),
	regexp.MustCompile(`all server processes terminated; reinitializing`),
	regexp.MustCompile(`\bPANIC: `),
}

// AssertNoCrashRecovery fails the test if the server log shows anything that
// made the postmaster reinitialize: a child killed by a signal or exiting
// with a code other than 0 or 1, a PANIC, or the resulting "terminating any
// other active server processes".
func (c *Cluster) AssertNoCrashRecovery(t testing.TB) {
	t.Helper()
	var bad []string
	for _, line := range strings.Split(c.Log(), "\n") {
		for _, re := range crashPatterns {
			if re.MatchString(line) {
				bad = append(bad, line)
				break
			}
		}
	}
	if len(bad) > 0 {
		t.Fatalf("pgtest: server log shows crash recovery:\n%s\n--- server log tail (%s) ---\n%s",
			strings.Join(bad, "\n"), c.logPath, c.LogTail(logTailLines))
	}
}

// Eventually polls cond every 10ms until it returns true or timeout passes,
// then fails the test with msg and cond's last error. An error does not end
// the wait, because what a test waits for (a table a worker creates, a
// backend that is still starting) often errors until it is ready. This is
// the sanctioned way to wait in tests: sleeps are no synchronization.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok && err == nil {
			return
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgtest: timed out after %v waiting for %s (last error: %v)", timeout, msg, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *Cluster) cleanup(t testing.TB) {
	if t.Failed() && c.logPath != "" {
		t.Logf("pgtest: server log tail (%s):\n%s", c.logPath, c.LogTail(logTailLines))
	}
	if err := c.Stop("immediate"); err != nil {
		t.Errorf("%v", err)
	} else {
		c.reclaimShm()
	}
	c.removeFiles()
}

// removeFiles removes the cluster's directories and lets go of the shared
// one, which goes too if this was the last cluster. Idempotent.
func (c *Cluster) removeFiles() {
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
	if c.install != "" {
		os.RemoveAll(c.install)
	}
	if c.sockDir != "" {
		os.RemoveAll(c.sockDir)
	}
	if c.shared {
		c.shared = false
		releaseShared()
	}
}

// reclaimShm frees the shared memory of a postmaster that was killed and
// never restarted. Only a shutdown frees it, and what is left (a System V
// segment and about 1 MB of /dev/shm) stays until the machine reboots, so
// the cluster is started once more for PostgreSQL to clean up after its
// predecessor, and stopped. If that fails (an orphan still attached), at
// least the System V segment is marked for removal.
func (c *Cluster) reclaimShm() {
	if c.dataDir == "" || c.Running() {
		return
	}
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return // clean shutdown, or never started
	}
	c.clearStaleLocks()
	if _, err := c.pgctl("start", "-w", "-t", "10", "-D", c.dataDir, "-l", c.logPath, "-o", ""); err == nil {
		if _, err := c.pgctl("stop", "-m", "immediate", "-w", "-t", startTimeout, "-D", c.dataDir); err == nil {
			return
		}
	}
	if c.Running() {
		return // cannot happen short of a hung postmaster; leave it be
	}
	// Line 7 of postmaster.pid is "<shm key> <shm id>".
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return
	}
	if id, err := strconv.Atoi(f[1]); err == nil && id >= 0 {
		removeShm(id)
	}
}

// pgctl runs pg_ctl as the server's user with the server's environment.
func (c *Cluster) pgctl(args ...string) ([]byte, error) {
	run, err := runAs()
	if err != nil {
		return nil, err
	}
	cmd := run.command(filepath.Join(c.bin, "pg_ctl"), c.opts.Env, args...)
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// runner runs PostgreSQL programs, as the postgres user when we are root.
type runner struct {
	cred *syscall.Credential // nil: run as ourselves
	home string
}

var runAs = sync.OnceValues(func() (*runner, error) {
	if os.Geteuid() != 0 {
		return &runner{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs a \"postgres\" OS user to run the server: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return &runner{cred: cred, home: u.HomeDir}, nil
})

func (r *runner) command(path string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Env = os.Environ()
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
		// What runuser would set; root's HOME is not readable by postgres.
		cmd.Env = append(cmd.Env, "HOME="+r.home, "USER=postgres", "LOGNAME=postgres")
	}
	cmd.Env = append(cmd.Env, env...)
	// pg_ctl hands the postmaster /dev/null and the log file, so nothing
	// should hold our output pipes; this only guards against a hang if
	// something does.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// own gives path to the server's user (when we are root) with mode.
func (r *runner) own(path string, mode os.FileMode) error {
	if r.cred != nil {
		if err := os.Chown(path, int(r.cred.Uid), int(r.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// defaultBinDir asks the pg_config that pggo build uses by default, so the
// server is the version the extension under test was built for.
var defaultBinDir = sync.OnceValues(func() (string, error) {
	pgc := build.DefaultPGConfig()
	out, err := exec.Command(pgc, "--bindir").Output()
	if err != nil {
		return "", fmt.Errorf("pgtest: Options.PGBin is empty and `%s --bindir` failed: %v", pgc, err)
	}
	return strings.TrimSpace(string(out)), nil
})

// shared is what the clusters of this process share: a directory holding
// the clusters' directories, in RAM if possible (see ramDir), else in
// TMPDIR, and a template only when there is no template cache (see
// cachedTemplate). It exists while at least one cluster does: the first
// Start makes it, and the cleanup of the last cluster removes it, so a test
// binary leaves nothing in /dev/shm. A later Start makes a new one. Only a
// process killed before its cleanups leaves it behind; the next process to
// start a cluster removes it (removeStale).
type shared struct {
	dir   string
	tmpls map[string]*tmplResult // by bin dir: versions need their own
}

var (
	sharedMu   sync.Mutex
	sharedDir  *shared
	sharedRefs int // clusters between acquireShared and releaseShared
)

// acquireShared returns the shared directory, making it if no cluster
// holds it; every successful call is matched by one releaseShared.
func acquireShared() (*shared, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedDir == nil {
		removeStale()
		root := ramDir()
		if root == "" {
			root = os.TempDir()
		}
		dir, err := os.MkdirTemp(root, fmt.Sprintf("pgtest-%d-", os.Getpid()))
		if err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		// The postgres user must traverse it when we are root.
		if err := os.Chmod(dir, 0o755); err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		sharedDir = &shared{dir: dir, tmpls: map[string]*tmplResult{}}
	}
	sharedRefs++
	return sharedDir, nil
}

// releaseShared removes the shared directory when no cluster holds it.
func releaseShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	sharedRefs--
	if sharedRefs == 0 && sharedDir != nil {
		os.RemoveAll(sharedDir.dir)
		sharedDir = nil
	}
}

// removeStale removes the directories of earlier test processes that were
// killed before their cleanups (they may hold clusters and a ~40 MB
// template), and any older than a day in case a pid was reused.
func removeStale() {
	var old []string
	for _, root := range []string{ramDir(), os.TempDir()} {
		if root != "" {
			m, _ := filepath.Glob(filepath.Join(root, "pgtest-*-*"))
			old = append(old, m...)
		}
	}
	for _, d := range old {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(strings.Split(filepath.Base(d), "-")[1])
		if err != nil {
			continue // not ours (the template cache, for one)
		}
		if !ProcessAlive(pid) || time.Since(fi.ModTime()) > 24*time.Hour {
			os.RemoveAll(d)
		}
	}
	// Cached templates unused for a week, and half-made ones of killed
	// processes (an initdb takes seconds, so an hour-old one is dead).
	if cache := cacheDir(); cache != "" {
		entries, _ := os.ReadDir(cache)
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				continue
			}
			idle := time.Since(fi.ModTime())
			if idle > templateMaxIdle || (strings.Contains(e.Name(), ".tmp-") && idle > time.Hour) {
				os.RemoveAll(filepath.Join(cache, e.Name()))
			}
		}
	}
}

type tmplResult struct {
	once sync.Once
	n    int // names the directory
	dir  string
	err  error
}

// template returns a data directory made by initdb for bin; clusters start
// from copies, which is much faster than initdb each time. It is the one in
// the template cache (see cachedTemplate), else one made in sh.dir, which
// goes with it.
func (sh *shared) template(bin string) (string, error) {
	sharedMu.Lock()
	r := sh.tmpls[bin]
	if r == nil {
		r = &tmplResult{n: len(sh.tmpls)}
		sh.tmpls[bin] = r
	}
	sharedMu.Unlock()
	r.once.Do(func() {
		if r.dir, r.err = cachedTemplate(bin); r.dir == "" && r.err == nil {
			r.dir, r.err = initTemplate(filepath.Join(sh.dir, fmt.Sprintf("template%d", r.n)), bin)
		}
	})
	return r.dir, r.err
}

// initdbArgs are the template's initdb options after -D.
var initdbArgs = []string{"-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"}

// templateMaxIdle is how long a cached template may go unused before a
// test process removes it (it belongs to a PostgreSQL since upgraded, say).
const templateMaxIdle = 7 * 24 * time.Hour

// cacheDir is this OS user's template cache, $TMPDIR/pgtest-cache-UID: a
// directory only its owner can add to, so nobody else can plant a template
// in it. "" when it cannot be made or is not ours (then every test process
// makes its own template, removed with its last cluster).
func cacheDir() string {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pgtest-cache-%d", os.Geteuid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return ""
	}
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return ""
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return ""
	}
	// The postgres user must traverse it when we are root (umask aside).
	if err := os.Chmod(dir, 0o755); err != nil {
		return ""
	}
	return dir
}

// cachedTemplate returns bin's template from the cache, making it there if
// it is missing. The cache is reused by content: a template is named after
// what made it (see templateKey), so every test process of this OS user
// that runs the same PostgreSQL shares one, across runs. That is the one
// thing pgtest leaves behind: about 40 MB on disk (never in /dev/shm) per
// PostgreSQL installation, removed after a week unused; deleting it any
// time is safe. It returns "" and no error when there is no usable cache.
func cachedTemplate(bin string) (string, error) {
	cache := cacheDir()
	if cache == "" {
		return "", nil
	}
	run, err := runAs()
	if err != nil {
		return "", err
	}
	key, err := templateKey(bin, run)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, key)
	if templateComplete(dir) {
		now := time.Now()
		os.Chtimes(dir, now, now) // in use: not idle
		return dir, nil
	}
	os.RemoveAll(dir) // not a complete template: ours (nobody else writes here), and useless
	// initdb in a private name, then one atomic rename: concurrent test
	// processes never see a half-made template, and the one that loses the
	// race uses the winner's.
	tmp, err := os.MkdirTemp(cache, key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if _, err := initTemplate(tmp, bin); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if templateComplete(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return dir, nil
}

// templateComplete reports whether dir is a finished template directory:
// initdb writes PG_VERSION early, so it is only trusted under the final name,
// which a template gets after initdb succeeded.
func templateComplete(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "PG_VERSION"))
	return err == nil
}

// templateKey names bin's template in the cache after everything that
// shapes it: the binaries (their directory, and the size and time of the
// postgres executable, which change when PostgreSQL is upgraded or
// rebuilt), initdb's options and the OS user the server runs as.
func templateKey(bin string, run *runner) (string, error) {
	fi, err := os.Stat(filepath.Join(bin, "postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	uid := os.Geteuid()
	if run.cred != nil {
		uid = int(run.cred.Uid)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00%s", bin, fi.Size(), fi.ModTime().UnixNano(), uid, strings.Join(initdbArgs, "\x00"))
	return "t" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// initTemplate runs initdb in dir (created if missing) as the server's user.
func initTemplate(dir, bin string) (string, error) {
	run, err := runAs()
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := run.own(dir, 0o700); err != nil {
		return "", err
	}
	cmd := run.command(filepath.Join(bin, "initdb"), nil, append([]string{"-D", dir}, initdbArgs...)...)
	cmd.Dir = filepath.Dir(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pgtest: initdb in %s failed: %v\n%s", dir, err, out)
	}
	return dir, nil
}

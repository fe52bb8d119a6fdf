package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pggo/pggo/internal/build"
)

var ready = regexp.MustCompile(`database system is ready to accept connections`)

func startTimed(t *testing.T, opts Options) *Cluster {
	t.Helper()
	t0 := time.Now()
	c := Start(t, opts)
	t.Logf("cluster started in %v (port %d, socket dir %s)", time.Since(t0).Round(time.Millisecond), c.Port(), c.SocketDir())
	return c
}

func TestStartConnect(t *testing.T) {
	c := startTimed(t, Options{})
	conn := c.Connect(t)
	var one int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	var dir string
	if err := conn.QueryRow(context.Background(), "SHOW data_directory").Scan(&dir); err != nil {
		t.Fatal(err)
	}
	if dir != c.DataDir() {
		t.Errorf("data_directory = %q, want %q", dir, c.DataDir())
	}

	if n := c.CountLog(ready); n != 1 {
		t.Errorf("CountLog(ready) = %d, want 1", n)
	}
	// The log line prefix gives the backend type, which WaitLog can extract.
	m := c.WaitLog(t, regexp.MustCompile(`\[(\d+)\] (postmaster) LOG:  database system is ready`), 5*time.Second)
	if len(m) != 3 || m[2] != "postmaster" {
		t.Fatalf("WaitLog submatches = %q", m)
	}
	if m[1] != fmt.Sprint(c.PostmasterPID()) {
		t.Errorf("ready line pid %s, PostmasterPID %d", m[1], c.PostmasterPID())
	}
	// Something logged after the start is seen by polling.
	if _, err := conn.Exec(context.Background(), "DO $$ BEGIN RAISE LOG 'pgtest marker %', 42; END $$"); err != nil {
		t.Fatal(err)
	}
	m = c.WaitLog(t, regexp.MustCompile(`pgtest marker (\d+)`), 5*time.Second)
	if m[1] != "42" {
		t.Errorf("marker submatch = %q", m[1])
	}
	if !strings.Contains(c.Log(), "pgtest marker 42") {
		t.Error("Log() lacks the marker")
	}
	if !strings.HasPrefix(c.LogPath(), filepath.Dir(c.DataDir())) {
		t.Errorf("log %s is not beside data dir %s", c.LogPath(), c.DataDir())
	}
	c.AssertNoCrashRecovery(t)
}

func TestSettings(t *testing.T) {
	tricky := `it's a \back'slash\n "quoted", 'x'`
	c := startTimed(t, Options{Settings: map[string]string{
		"work_mem":      "7MB",
		"pgtest.tricky": tricky,
	}})
	conn := c.Connect(t)
	show := func(name string) string {
		var v string
		if err := conn.QueryRow(context.Background(), "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatalf("current_setting(%s): %v", name, err)
		}
		return v
	}
	if v := show("work_mem"); v != "7MB" {
		t.Errorf("work_mem = %q, want 7MB", v)
	}
	if v := show("pgtest.tricky"); v != tricky {
		t.Errorf("pgtest.tricky = %q, want %q", v, tricky)
	}
	if v := show("listen_addresses"); v != "" {
		t.Errorf("listen_addresses = %q, want empty", v)
	}
	if v := show("fsync"); v != "off" {
		t.Errorf("fsync = %q", v)
	}
}

func TestBadSettingName(t *testing.T) {
	_, err := StartE(t, Options{Settings: map[string]string{"work_mem = 1MB\nfsync": "on"}})
	if err == nil || !strings.Contains(err.Error(), "invalid setting name") {
		t.Fatalf("err = %v, want invalid setting name", err)
	}
}

func TestStartEInvalidSetting(t *testing.T) {
	c, err := StartE(t, Options{Settings: map[string]string{"shared_buffers": "bogus"}})
	if err == nil {
		t.Fatal("server started with shared_buffers = bogus")
	}
	if c == nil {
		t.Fatal("StartE returned a nil cluster")
	}
	const reason = `invalid value for parameter "shared_buffers": "bogus"`
	if !strings.Contains(c.Log(), reason) {
		t.Errorf("log lacks %q:\n%s", reason, c.Log())
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("error lacks the log tail with %q:\n%v", reason, err)
	}
	if c.Running() {
		t.Error("Running() after a failed start")
	}
	if err := c.Stop("fast"); err != nil {
		t.Errorf("Stop after failed start: %v", err)
	}
}

func TestParallelClusters(t *testing.T) {
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			c := startTimed(t, Options{Settings: map[string]string{"application_name": fmt.Sprint("cluster", i)}})
			conn := c.Connect(t)
			ctx := context.Background()
			// Same table name in both: each must see only its own row.
			if _, err := conn.Exec(ctx, "CREATE TABLE who (id int)"); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "INSERT INTO who VALUES ($1)", i); err != nil {
				t.Fatal(err)
			}
			var ids []int32
			rows, err := conn.Query(ctx, "SELECT id FROM who")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id int32
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(ids) != 1 || int(ids[0]) != i {
				t.Errorf("cluster %d sees ids %v", i, ids)
			}
			var dir string
			if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil || dir != c.DataDir() {
				t.Errorf("data_directory = %q (%v), want %q", dir, err, c.DataDir())
			}
		})
	}
}

func TestPIDStopRestart(t *testing.T) {
	c := startTimed(t, Options{})
	pid := c.PostmasterPID()
	if pid <= 0 || !ProcessAlive(pid) || !c.Running() {
		t.Fatalf("PostmasterPID = %d, alive %v", pid, ProcessAlive(pid))
	}
	t0 := time.Now()
	if err := c.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop(fast) took %v", time.Since(t0).Round(time.Millisecond))
	if c.PostmasterPID() != 0 || c.Running() {
		t.Errorf("after Stop: pid file %d, running %v", c.PostmasterPID(), c.Running())
	}
	Eventually(t, 10*time.Second, "old postmaster to go", func() (bool, error) {
		return !ProcessAlive(pid), nil
	})
	if err := c.Stop("fast"); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.SocketDir(), fmt.Sprintf(".s.PGSQL.%d", c.Port()))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Stop: %v", err)
	}

	t0 = time.Now()
	c.Restart(t)
	t.Logf("Restart from stopped took %v", time.Since(t0).Round(time.Millisecond))
	pid2 := c.PostmasterPID()
	if pid2 == pid || !ProcessAlive(pid2) {
		t.Fatalf("after Restart: pid %d (old %d), alive %v", pid2, pid, ProcessAlive(pid2))
	}
	t0 = time.Now()
	c.Restart(t)
	t.Logf("Restart while running took %v", time.Since(t0).Round(time.Millisecond))
	conn := c.Connect(t)
	if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	// An immediate stop makes the next start recover, but that is no crash.
	if err := c.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	c.Restart(t)
	if n := c.CountLog(ready); n != 4 {
		t.Errorf("ready %d times, want 4", n)
	}
	c.AssertNoCrashRecovery(t)
}

// A test may kill the postmaster; Stop and Restart must cope, even when the
// killed postmaster lingers as a zombie because init does not reap it.
func TestKilledPostmaster(t *testing.T) {
	c := startTimed(t, Options{})
	pid := c.PostmasterPID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "killed postmaster to be dead", func() (bool, error) {
		return !c.Running(), nil
	})
	if c.PostmasterPID() != pid {
		t.Errorf("postmaster.pid should be stale (%d), got %d", pid, c.PostmasterPID())
	}
	t0 := time.Now()
	if err := c.Stop("fast"); err != nil {
		t.Fatalf("Stop of a dead postmaster: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Stop of a dead postmaster took %v", d)
	}
	c.Restart(t)
	if !c.Running() || c.PostmasterPID() == pid {
		t.Fatalf("Restart after kill: running %v pid %d", c.Running(), c.PostmasterPID())
	}
	conn := c.Connect(t)
	if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// fakeTB records a Fatalf instead of failing the real test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestAssertNoCrashRecoveryDetectsCrash(t *testing.T) {
	c := startTimed(t, Options{})
	conn := c.Connect(t)
	var backend int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	if f := runFake(t, c.AssertNoCrashRecovery); f.failed {
		t.Fatalf("healthy cluster reported as crashed: %s", f.msg)
	}
	if err := syscall.Kill(backend, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.WaitLog(t, regexp.MustCompile(`all server processes terminated; reinitializing`), 10*time.Second)
	f := runFake(t, c.AssertNoCrashRecovery)
	if !f.failed || !strings.Contains(f.msg, "terminated by signal 9") {
		t.Fatalf("crash not reported: failed=%v msg=%q", f.failed, f.msg)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, time.Second, "third call", func() (bool, error) {
		n++
		if n < 3 {
			return false, errors.New("not yet")
		}
		return true, nil
	})
	f := runFake(t, func(tb testing.TB) {
		Eventually(tb, 50*time.Millisecond, "never", func() (bool, error) {
			return false, errors.New("boom")
		})
	})
	if !f.failed || !strings.Contains(f.msg, "never") || !strings.Contains(f.msg, "boom") {
		t.Fatalf("Eventually timeout: failed=%v msg=%q", f.failed, f.msg)
	}
}

// Preload paths go through two layers of quoting (postgresql.conf string,
// then the list's double quotes); a path with a comma, blanks and quotes
// proves both.
func TestPreloadQuoting(t *testing.T) {
	// The server's own pg_stat_statements: another version's is refused.
	pkglib, err := exec.Command(build.DefaultPGConfig(), "--pkglibdir").Output()
	if err != nil {
		t.Skipf("%s --pkglibdir: %v", build.DefaultPGConfig(), err)
	}
	src := filepath.Join(strings.TrimSpace(string(pkglib)), "pg_stat_statements.so")
	lib, err := os.ReadFile(src)
	if err != nil {
		t.Skipf("no pg_stat_statements: %v", err)
	}
	// Not t.TempDir: the server (postgres user when we are root) must read it.
	dir, err := os.MkdirTemp("", `pgtest lib, "it's" `)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	so := filepath.Join(dir, "pg_stat_statements.so")
	if err := os.WriteFile(so, lib, 0o644); err != nil {
		t.Fatal(err)
	}
	c := startTimed(t, Options{Preload: []string{so}})
	conn := c.Connect(t)
	var n int
	if err := conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_settings WHERE name LIKE 'pg\\_stat\\_statements.%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("pg_stat_statements not loaded from %q", so)
	}
}

func TestEnvReachesServer(t *testing.T) {
	// The server has no SQL view of its environment; /proc shows it.
	c := startTimed(t, Options{Env: []string{"PGGO_TEST_MARKER=hello world"}})
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.PostmasterPID()))
	if err != nil {
		t.Skipf("no /proc environ: %v", err)
	}
	if !slices.Contains(strings.Split(string(b), "\x00"), "PGGO_TEST_MARKER=hello world") {
		t.Errorf("postmaster environment lacks PGGO_TEST_MARKER")
	}
}

// A backend busy in a loop does not notice the postmaster's death until the
// loop ends, so it keeps the shared memory attached; Restart must wait it out.
func TestRestartWaitsForOrphans(t *testing.T) {
	c := startTimed(t, Options{})
	busy := c.Connect(t)
	var busyPID int
	if err := busy.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&busyPID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := busy.Exec(context.Background(),
			"DO $$ BEGIN WHILE clock_timestamp() < now() + interval '1.5 s' LOOP END LOOP; END $$")
		done <- err
	}()
	watch := c.Connect(t)
	Eventually(t, 5*time.Second, "busy loop to run", func() (bool, error) {
		var state string
		err := watch.QueryRow(context.Background(),
			"SELECT state FROM pg_stat_activity WHERE pid = $1", busyPID).Scan(&state)
		return state == "active", err
	})
	pid := c.PostmasterPID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 5*time.Second, "postmaster to die", func() (bool, error) { return !c.Running(), nil })
	if !ProcessAlive(busyPID) {
		t.Skip("busy backend already gone; nothing to wait for")
	}
	t0 := time.Now()
	c.Restart(t)
	t.Logf("Restart waited %v for the orphaned backend", time.Since(t0).Round(time.Millisecond))
	if ProcessAlive(busyPID) {
		t.Errorf("restarted while orphan %d still alive", busyPID)
	}
	if n := strings.Count(c.Log(), "is still in use"); n == 0 {
		t.Errorf("expected at least one refused start while the orphan lived")
	}
	<-done
	conn := c.Connect(t)
	if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// sharedDirs lists this process's shared directories (template and
// clusters) wherever pgtest may put them.
func sharedDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	for _, root := range []string{ramDir(), os.TempDir()} {
		if root != "" {
			m, err := filepath.Glob(filepath.Join(root, fmt.Sprintf("pgtest-%d-*", os.Getpid())))
			if err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, m...)
		}
	}
	return dirs
}

// Nothing of a test binary's clusters stays in /dev/shm (or TMPDIR) after
// its last cluster is gone; the template is cached on disk by content and
// the next cluster, of this process or another, reuses it without initdb.
func TestNoLeftoversTemplateReused(t *testing.T) {
	if d := sharedDirs(t); len(d) != 0 {
		t.Fatalf("another cluster of this process is still alive: %v", d)
	}
	a, err := Launch(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Launch(Options{})
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	if filepath.Dir(a.dir) != filepath.Dir(b.dir) {
		t.Errorf("clusters in %s and %s: want one shared directory", a.dir, b.dir)
	}
	tmpl := a.template
	if b.template != tmpl || filepath.Dir(tmpl) != cacheDir() {
		t.Fatalf("templates %s and %s, want one in the cache %s", a.template, b.template, cacheDir())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Close() // idempotent: must not let go of the shared directory twice
	if _, err := os.Stat(b.dir); err != nil {
		t.Fatalf("the other cluster's files went with the first: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if d := sharedDirs(t); len(d) != 0 {
		t.Fatalf("left behind after the last cluster: %v", d)
	}
	fi, err := os.Stat(filepath.Join(tmpl, "PG_VERSION"))
	if err != nil {
		t.Fatalf("the cached template is gone: %v", err)
	}

	t.Run("a later cluster reuses the template", func(t *testing.T) {
		c := startTimed(t, Options{})
		if c.template != tmpl {
			t.Fatalf("template %s, want the cached %s", c.template, tmpl)
		}
		if fi2, err := os.Stat(filepath.Join(tmpl, "PG_VERSION")); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
			t.Fatalf("the template was made again (%v)", err)
		}
		conn := c.Connect(t)
		if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	})
	if d := sharedDirs(t); len(d) != 0 {
		t.Fatalf("left behind after the test's cleanup: %v", d)
	}
}

// A cache directory others can write to is not trusted: the process makes
// its own template, which goes with its last cluster.
func TestUntrustedTemplateCache(t *testing.T) {
	// Not t.TempDir, whose parent the server's user (when we are root)
	// cannot traverse.
	tmp, err := os.MkdirTemp("", "pgtest-untrusted-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o755)
	t.Setenv("TMPDIR", tmp)
	cache := filepath.Join(tmp, fmt.Sprintf("pgtest-cache-%d", os.Geteuid()))
	if err := os.Mkdir(cache, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cache, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if cacheDir() != "" {
		t.Fatal("a world-writable cache directory is trusted")
	}
	var shared string
	t.Run("cluster", func(t *testing.T) {
		c := startTimed(t, Options{})
		shared = filepath.Dir(c.dir)
		if filepath.Dir(c.template) != shared {
			t.Fatalf("template %s, want one in the process's directory %s", c.template, shared)
		}
	})
	if _, err := os.Stat(shared); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s (and its template) left behind: %v", shared, err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Fatalf("something was written to the untrusted cache: %v", entries)
	}
}

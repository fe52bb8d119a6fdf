// Package integration tests pggo end to end: it builds internal/testext with
// `pggo build`, preloads it into throwaway PostgreSQL clusters (pgtest) and
// checks, from an ordinary client, what the Go workers did.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/internal/build"
	"github.com/pggo/pggo/pgtest"
)

var (
	buildOnce sync.Once
	built     *build.Result
	buildErr  error
)

// testext builds internal/testext once per test binary.
func testext(t *testing.T) *build.Result {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "testext")
		out, err := os.MkdirTemp("", "pggo-testext-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(out, 0o755) // the server runs as another OS user
		built, buildErr = build.Build(context.Background(), build.Options{Dir: src, Out: out, Name: "testext"})
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// sourcePath is a path relative to the repository's root.
func sourcePath(rel string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", rel)
}

func startWith(t *testing.T, env ...string) *pgtest.Cluster {
	t.Helper()
	lib := testext(t)
	return pgtest.Start(t, pgtest.Options{Preload: []string{lib.Loader}, Env: env})
}

// result waits for the row a worker of type pggo_test_<worker> records under key.
func result(t *testing.T, conn *pgx.Conn, worker, key string) string {
	t.Helper()
	var v string
	pgtest.Eventually(t, 30*time.Second, fmt.Sprintf("worker %s to record %q", worker, key), func() (bool, error) {
		err := conn.QueryRow(context.Background(),
			"SELECT value FROM pggo_results WHERE worker = $1 AND key = $2 ORDER BY at LIMIT 1",
			"pggo_test_"+worker, key).Scan(&v)
		if err == pgx.ErrNoRows {
			return false, nil
		}
		return err == nil, err
	})
	return v
}

func workerPID(t *testing.T, conn *pgx.Conn, worker string) int {
	t.Helper()
	var pid int
	pgtest.Eventually(t, 30*time.Second, "worker "+worker+" in pg_stat_activity", func() (bool, error) {
		err := conn.QueryRow(context.Background(),
			"SELECT pid FROM pg_stat_activity WHERE backend_type = $1", "pggo_test_"+worker).Scan(&pid)
		if err == pgx.ErrNoRows {
			return false, nil
		}
		return err == nil, err
	})
	return pid
}

func threads(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Threads:\s+(\d+)`).FindSubmatch(data)
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// waitGone measures how long pid takes to exit, failing after limit.
func waitGone(t *testing.T, pid int, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		if !pgtest.ProcessAlive(pid) {
			return time.Since(since)
		}
		if time.Since(since) > limit {
			t.Fatalf("process %d still alive %v after the signal", pid, limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStaticWorkers runs one cluster with several static Go workers and
// checks the process model, SPI and transactions, threads, the environment,
// signals and latches.
func TestStaticWorkers(t *testing.T) {
	c := startWith(t, "PGGO_TEST_WORKERS=spi,signals,thread,env,latch,default_sigterm", "PGGO_TEST_ENV=hello from the server's environment")
	conn := c.Connect(t)
	ctx := context.Background()

	t.Run("postmaster stays single-threaded", func(t *testing.T) {
		workerPID(t, conn, "spi") // the workers run: Go was loaded somewhere
		if n := threads(t, c.PostmasterPID()); n != 1 {
			t.Fatalf("postmaster has %d threads, want 1", n)
		}
		if n := threads(t, workerPID(t, conn, "spi")); n < 2 {
			t.Fatalf("a Go worker has %d threads; expected the Go runtime's", n)
		}
		out, err := exec.Command(filepath.Join(c.BinDir(), "psql"), "-X", "-A", "-t", "-h", c.SocketDir(),
			"-p", strconv.Itoa(c.Port()), "-U", "postgres", "-d", "postgres", "-c", "SELECT 6 * 7").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "42" {
			t.Fatalf("psql session: %v %q", err, out)
		}
	})

	t.Run("identity", func(t *testing.T) {
		if got, want := result(t, conn, "spi", "identity"), "pggo test spi|pggo_test_spi|extra for spi|42"; got != want {
			t.Fatalf("Name|Type|Extra|arg = %q, want %q", got, want)
		}
	})

	t.Run("transactions commit and roll back", func(t *testing.T) {
		result(t, conn, "spi", "last")
		checks := map[string]string{
			"first":     "^nil$",
			"failing":   "^22012 division by zero$",
			"panic":     "panic inside Transaction",
			"swallowed": "^25P02 ",
			"last":      "^nil$",
		}
		for key, re := range checks {
			if got := result(t, conn, "spi", key); !regexp.MustCompile(re).MatchString(got) {
				t.Errorf("%s: got %q, want match for %q", key, got, re)
			}
		}
		if got, want := result(t, conn, "spi", "rows"), "inserted=2 count=3 1:first,5:second,6:NULL"; got != want {
			t.Errorf("rows seen by the worker: %q, want %q", got, want)
		}
		var vs []int
		rows, _ := conn.Query(ctx, "SELECT v FROM spi_rows ORDER BY v")
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil || fmt.Sprint(vs) != "[1 5 6]" {
			t.Errorf("committed rows %v (%v), want [1 5 6]: rolled-back rows must not exist", vs, err)
		}
	})

	t.Run("PostgreSQL calls from another goroutine", func(t *testing.T) {
		got := result(t, conn, "thread", "other goroutine")
		if !strings.Contains(got, "wrong=true") || !strings.Contains(got, "worker's own goroutine") {
			t.Fatalf("calls from a second goroutine: %q", got)
		}
	})

	t.Run("os.Getenv sees the server's environment", func(t *testing.T) {
		if got := result(t, conn, "env", "env"); got != "hello from the server's environment" {
			t.Fatalf("os.Getenv in the worker = %q", got)
		}
	})

	t.Run("SIGHUP", func(t *testing.T) {
		result(t, conn, "signals", "ready")
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
		if got := result(t, conn, "signals", "sighup"); got != "first=true second=false" {
			t.Fatalf("SighupReceived: %q", got)
		}
		var n int
		conn.QueryRow(ctx, "SELECT count(*) FROM pggo_results WHERE key = 'sighup'").Scan(&n)
		if n != 1 {
			t.Fatalf("%d SIGHUP reports for one reload", n)
		}
	})

	t.Run("50 cross-process SetLatch wake-ups with busy goroutines", func(t *testing.T) {
		testSetLatch(t, c, conn)
	})

	t.Run("SIGTERM via pg_terminate_backend", func(t *testing.T) {
		pid := workerPID(t, conn, "signals")
		start := time.Now()
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		took := waitGone(t, pid, start, time.Second)
		t.Logf("worker with SIGTERM attached exited %v after pg_terminate_backend", took)
		c.WaitLog(t, regexp.MustCompile(`leaving after SIGTERM`), 5*time.Second)
		// Exit code 0 is logged only at DEBUG1; code 1 would be logged at LOG.
		if n := c.CountLog(regexp.MustCompile(`"pggo_test_signals" \(PID \d+\) exited with exit code 1`)); n != 0 {
			t.Fatalf("the worker returned nil after SIGTERM but exited with code 1")
		}
	})

	t.Run("SIGTERM without AttachSignalHandlers ends with FATAL", func(t *testing.T) {
		pid := workerPID(t, conn, "default_sigterm")
		start := time.Now()
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		took := waitGone(t, pid, start, time.Second)
		t.Logf("worker with the default SIGTERM handling exited %v after pg_terminate_backend", took)
		c.WaitLog(t, regexp.MustCompile(`FATAL:  terminating background worker "pggo_test_default_sigterm" due to administrator command`), 5*time.Second)
	})

	t.Run("pg_ctl stop -m fast", func(t *testing.T) {
		var pids []int
		for _, w := range []string{"spi", "latch", "thread", "env"} {
			pids = append(pids, workerPID(t, conn, w))
		}
		conn.Close(ctx)
		start := time.Now()
		if err := c.Stop("fast"); err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			took := waitGone(t, pid, start, time.Second)
			t.Logf("worker %d gone %v after pg_ctl stop -m fast", pid, took)
		}
		t.Logf("pg_ctl stop -m fast took %v", time.Since(start))
		c.AssertNoCrashRecovery(t)
	})
}

// testSetLatch sets the latch of a waiting Go worker 50 times from a backend
// and waits for each wake-up with a deadline: a lost wake-up (SIGURG taken by
// a Go thread) would leave the worker asleep for its one-minute timeout.
func testSetLatch(t *testing.T, c *pgtest.Cluster, conn *pgx.Conn) {
	ctx := context.Background()
	lib := testext(t)
	if _, err := conn.Exec(ctx, fmt.Sprintf(
		"CREATE FUNCTION pggo_set_latch(int4) RETURNS bool AS '%s', 'pggo_set_latch' LANGUAGE C STRICT",
		strings.ReplaceAll(lib.Loader, "'", "''"))); err != nil {
		t.Fatal(err)
	}
	result(t, conn, "latch", "ready")
	pid := workerPID(t, conn, "latch")
	var latencies []time.Duration
	for i := 1; i <= 50; i++ {
		// Only a sleeping worker is woken by a signal; wait until it sleeps.
		pgtest.Eventually(t, 10*time.Second, "latch worker waiting on its latch", func() (bool, error) {
			var ev *string
			err := conn.QueryRow(ctx, "SELECT wait_event FROM pg_stat_activity WHERE pid = $1", pid).Scan(&ev)
			return err == nil && ev != nil && *ev == "Extension", err
		})
		var before int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pggo_wakes").Scan(&before); err != nil {
			t.Fatal(err)
		}
		var sent time.Time
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp(), pggo_set_latch($1)", pid).Scan(&sent, &ok); err != nil || !ok {
			t.Fatalf("pggo_set_latch(%d): %v %v", pid, ok, err)
		}
		var woke time.Time
		deadline := time.Now().Add(5 * time.Second)
		for {
			var n int
			err := conn.QueryRow(ctx, "SELECT count(*), coalesce(min(at) FILTER (WHERE at >= $1), now()) FROM pggo_wakes", sent).Scan(&n, &woke)
			if err != nil {
				t.Fatal(err)
			}
			if n > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("wake-up %d of 50 lost: the worker did not wake within 5 s (%d wake-ups recorded)", i, n)
			}
			time.Sleep(time.Millisecond)
		}
		latencies = append(latencies, woke.Sub(sent))
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("50/50 SetLatch wake-ups with 3 busy goroutines: p50 %v, max %v (SetLatch to the worker's clock_timestamp after waking)",
		latencies[25], latencies[49])
}

// TestExitCodes checks what PostgreSQL does when Go code fails: ERROR in the
// log with the panic text, exit code 1, restart after the restart time, never
// crash recovery.
func TestExitCodes(t *testing.T) {
	c := startWith(t, "PGGO_TEST_WORKERS=panic,return_error,gopanic", "PGGO_TEST_RESTART=1")
	conn := c.Connect(t)

	panicRE := regexp.MustCompile(`(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \S+ \[(\d+)\] .*ERROR:  background worker function "testext_panic" panicked: testext boom in pid (\d+)`)
	// The panicking worker (restart time 1 s) must be restarted: wait for 3 runs.
	pgtest.Eventually(t, 30*time.Second, "three runs of the panicking worker", func() (bool, error) {
		return len(panicRE.FindAllStringSubmatch(c.Log(), -1)) >= 3, nil
	})
	runs := panicRE.FindAllStringSubmatch(c.Log(), -1)
	var times []time.Time
	for _, r := range runs[:3] {
		at, err := time.Parse("2006-01-02 15:04:05.000", r[1])
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, at)
		if r[2] != r[3] {
			t.Errorf("panic text names pid %s but was logged by %s", r[3], r[2])
		}
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 900*time.Millisecond {
			t.Errorf("restart %d came %v after the previous run; restart time is 1 s", i, gap)
		} else {
			t.Logf("restart %d came %v after the previous exit", i, gap)
		}
	}
	if !regexp.MustCompile(`DETAIL:  Go stack:\n(?s:.*)main\.panicMain`).MatchString(c.Log()) {
		t.Errorf("the ERROR's detail does not carry the Go stack of the panic")
	}
	if n := c.CountLog(regexp.MustCompile(`background worker "pggo_test_panic" \(PID \d+\) exited with exit code 1`)); n < 2 {
		t.Errorf("%d exits with code 1 logged for the panicking worker", n)
	}

	// By now more than 2 s have passed: the NeverRestart worker ran once only.
	if n := c.CountLog(regexp.MustCompile(`ERROR:  background worker function "testext_return_error" failed: testext returned this error`)); n != 1 {
		t.Errorf("the NeverRestart worker that returned an error ran %d times, want 1", n)
	}

	// A panic in a bgworker.Go goroutine ends the worker with exit code 1.
	c.WaitLog(t, regexp.MustCompile(`ERROR:  background worker function "testext_gopanic" panicked: testext goroutine boom`), 10*time.Second)
	c.WaitLog(t, regexp.MustCompile(`background worker "pggo_test_gopanic" \(PID \d+\) exited with exit code 1`), 10*time.Second)
	_ = conn
	c.AssertNoCrashRecovery(t)
}

// TestPostmasterDeath kills the postmaster with SIGKILL: every Go worker must
// notice (WaitLatch returns false) and exit within a second.
func TestPostmasterDeath(t *testing.T) {
	c := startWith(t, "PGGO_TEST_WORKERS=signals,latch,spi")
	conn := c.Connect(t)
	pids := []int{workerPID(t, conn, "signals"), workerPID(t, conn, "latch"), workerPID(t, conn, "spi")}
	result(t, conn, "latch", "ready")
	result(t, conn, "spi", "last")
	conn.Close(context.Background())
	start := time.Now()
	if err := syscall.Kill(c.PostmasterPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		took := waitGone(t, pid, start, time.Second)
		t.Logf("worker %d gone %v after SIGKILL of the postmaster", pid, took)
	}
}

// TestValidation: each bad worker definition stops the server from starting,
// with a message naming the worker and the field.
func TestValidation(t *testing.T) {
	cases := map[string]string{
		"name":     `background worker "n{96}": name: 96 bytes is too long: PostgreSQL keeps at most 95 bytes \(BGW_MAXLEN-1\)`,
		"type":     `background worker "pggo invalid": type: 96 bytes is too long: PostgreSQL keeps at most 95 bytes`,
		"extra":    `background worker "pggo invalid": extra: 128 bytes is too long: PostgreSQL keeps at most 127 bytes \(BGW_EXTRALEN-1\)`,
		"nul":      `background worker "pggo invalid": extra: contains a NUL byte`,
		"utf8":     `background worker "pggo invalid": type: byte 5 \(0xff\) is not valid UTF-8`,
		"function": `background worker "pggo invalid": function: "not_registered" is not registered`,
		"library":  `background worker "pggo invalid": library: "some_other_library" is not this extension`,
		"restart":  `background worker "pggo invalid": restart time: 1.5s is not a whole number of seconds`,
		"start":    `background worker "pggo invalid": start time: a worker with SPI access cannot start at PostmasterStart`,
		"ignored":  `background worker "pggo invalid": extra: 200 bytes is too long`,
		"oninit":   `OnInit: the test asked OnInit to fail`,
	}
	lib := testext(t)
	for field, want := range cases {
		t.Run(field, func(t *testing.T) {
			t.Parallel()
			c, err := pgtest.StartE(t, pgtest.Options{
				Preload: []string{lib.Loader},
				Env:     []string{"PGGO_TEST_WORKERS=spi", "PGGO_TEST_INVALID=" + field},
			})
			if err == nil {
				t.Fatalf("the server started with an invalid %s", field)
			}
			if !regexp.MustCompile(`FATAL:  pggo: \S+: (OnInit: )?` + want).MatchString(c.Log()) {
				t.Fatalf("log does not name the problem (want %q):\n%s", want, c.LogTail(10))
			}
			if c.Running() {
				t.Fatal("a postmaster is running")
			}
		})
	}
}

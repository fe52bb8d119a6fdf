// Package fault is pggo's fault suite (issue 9, part 4): it builds
// internal/faultext, preloads it into throwaway PostgreSQL clusters (pgtest)
// and checks, from an ordinary client, that injected faults, signal storms,
// shutdowns, kills, load and bad input never crash PostgreSQL or lose a
// commit.
//
// `go test ./internal/fault` is the quick run (part of `make test`); with
// -soak (or PGGO_SOAK=1) every scenario runs longer and harder (`make soak`).
// Both write their figures as Markdown to -reliability (default: a file in
// the temporary directory, named in the output); only a soak run may write a
// file called RELIABILITY.md, so that the quick figures never replace the
// published ones.
package fault

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pggo/pggo/internal/build"
	"github.com/pggo/pggo/pgtest"
)

var (
	soakFlag    = flag.Bool("soak", false, "run the full fault suite (also PGGO_SOAK=1)")
	reliability = flag.String("reliability", "", "write the figures as Markdown to this file (default: in the temporary directory)")
)

// soak reports whether this is the full run.
func soak() bool { return *soakFlag || os.Getenv("PGGO_SOAK") == "1" }

// pick returns quick or full by the run's kind.
func pick[T any](quick, full T) T {
	if soak() {
		return full
	}
	return quick
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if err := writeReport(); err != nil {
		fmt.Fprintln(os.Stderr, "fault: writing the report:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	built     *build.Result
	buildErr  error
	buildDir  string
)

// faultext builds internal/faultext once per test binary, into a directory
// the server's OS user can read.
func faultext(t testing.TB) *build.Result {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "pggo-faultext-"); buildErr != nil {
			return
		}
		os.Chmod(buildDir, 0o755)
		built, buildErr = build.Build(context.Background(), build.Options{Dir: sourceDir("faultext"), Out: buildDir, Name: "faultext"})
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// sourceDir is a directory of internal/, next to this package.
func sourceDir(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", name)
}

// start starts a cluster with faultext preloaded.
func start(t testing.TB, settings map[string]string, env ...string) *pgtest.Cluster {
	t.Helper()
	lib := faultext(t)
	return pgtest.Start(t, pgtest.Options{Preload: []string{lib.Loader}, Settings: settings, Env: env})
}

// tracked is a test that also records its failures for the report: the
// suite publishes which scenarios fail and how.
type tracked struct {
	testing.TB
	res *scenario
}

func (t *tracked) note(args ...any) { t.res.fail(strings.TrimSpace(fmt.Sprintln(args...))) }

// Error records the failure, then fails the test.
func (t *tracked) Error(args ...any) { t.TB.Helper(); t.note(args...); t.TB.Error(args...) }

// Errorf records the failure, then fails the test.
func (t *tracked) Errorf(format string, args ...any) {
	t.TB.Helper()
	t.res.fail(fmt.Sprintf(format, args...))
	t.TB.Errorf(format, args...)
}

// Fatal records the failure, then fails and ends the test.
func (t *tracked) Fatal(args ...any) { t.TB.Helper(); t.note(args...); t.TB.Fatal(args...) }

// Fatalf records the failure, then fails and ends the test.
func (t *tracked) Fatalf(format string, args ...any) {
	t.TB.Helper()
	t.res.fail(fmt.Sprintf(format, args...))
	t.TB.Fatalf(format, args...)
}

// track registers t as a scenario of the report under title.
func track(t *testing.T, title string) *tracked {
	s := addScenario(t.Name(), title)
	start := time.Now()
	t.Cleanup(func() { s.finish(t.Failed(), t.Skipped(), time.Since(start)) })
	return &tracked{TB: t, res: s}
}

// workers returns the pids of the running faultext workers of a kind, by
// worker name.
func workers(t testing.TB, conn *pgx.Conn, kind string) map[string]int {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT backend_type || '/' || pid, pid FROM pg_stat_activity WHERE backend_type = $1", "faultext_"+kind)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var k string
		var pid int
		if err := rows.Scan(&k, &pid); err != nil {
			t.Fatal(err)
		}
		out[k] = pid
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// allPIDs returns the pids of every faultext worker.
func allPIDs(t testing.TB, conn *pgx.Conn) []int {
	t.Helper()
	rows, _ := conn.Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'faultext%' ORDER BY pid")
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// progress is a busy worker's row in fault_progress.
type progress struct {
	PID                      int
	N, Sighups, Cancels, Bad int64
	LastError                string
}

// progressOf reads fault_progress, by "kind/worker".
func progressOf(t testing.TB, conn *pgx.Conn) map[string]progress {
	t.Helper()
	var p map[string]progress
	// The first worker creates the table: wait for it, not for the workers.
	pgtest.Eventually(t, 30*time.Second, "fault_progress to be readable", func() (bool, error) {
		var err error
		p, err = readProgress(conn)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" {
			return false, nil
		}
		return err == nil, err
	})
	return p
}

// readProgress is progressOf returning its error: the table exists only
// once a worker has created it.
func readProgress(conn *pgx.Conn) (map[string]progress, error) {
	rows, err := conn.Query(context.Background(),
		"SELECT kind || '/' || worker, coalesce(pid, 0), n, sighups, cancels, unexpected, coalesce(last_error, '') FROM fault_progress")
	if err != nil {
		return nil, err
	}
	out := map[string]progress{}
	for rows.Next() {
		var k string
		var p progress
		if err := rows.Scan(&k, &p.PID, &p.N, &p.Sighups, &p.Cancels, &p.Bad, &p.LastError); err != nil {
			return nil, err
		}
		out[k] = p
	}
	return out, rows.Err()
}

// waitProgress waits until each of the want busy workers ("kind/worker")
// has done at least min units more than in base.
func waitProgress(t testing.TB, conn *pgx.Conn, want []string, base map[string]progress, min int64, timeout time.Duration, what string) map[string]progress {
	t.Helper()
	var last map[string]progress
	pgtest.Eventually(t, timeout, what, func() (bool, error) {
		var err error
		if last, err = readProgress(conn); err != nil {
			return false, err
		}
		for _, k := range want {
			p, ok := last[k]
			if !ok || p.N < base[k].N+min {
				return false, fmt.Errorf("%s: %d units (from %d), want +%d", k, p.N, base[k].N, min)
			}
		}
		return true, nil
	})
	return last
}

// busyNames lists "kind/i" for count workers of each kind.
func busyNames(counts map[string]int) []string {
	var out []string
	for kind, n := range counts {
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("%s/%d", kind, i))
		}
	}
	return out
}

// busySpec is the PGGO_FAULT_WORKERS value for counts.
func busySpec(counts map[string]int) string {
	var parts []string
	for _, kind := range []string{"spi", "sleep", "lock", "wake", "ledger", "badinput", "params"} {
		if n := counts[kind]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", kind, n))
		}
	}
	return "PGGO_FAULT_WORKERS=" + strings.Join(parts, ",")
}

// crashLines are the log lines of a crash and the postmaster's recovery
// from it (what pgtest.AssertNoCrashRecovery looks for).
var crashLines = regexp.MustCompile(`(?m)^.*(terminating any other active server processes|was terminated by signal|was terminated by exception|exited with exit code ([2-9]|[1-9][0-9]+)\b|all server processes terminated; reinitializing|\bPANIC: ).*$`)

// recoveries counts the crash recoveries in the log so far.
func recoveries(c *pgtest.Cluster) int {
	return strings.Count(c.Log(), "all server processes terminated; reinitializing")
}

// crashSummary returns the log's crash lines, at most n of them.
func crashSummary(c *pgtest.Cluster, n int) string {
	lines := crashLines.FindAllString(c.Log(), n)
	return strings.Join(lines, "\n")
}

// waitGone waits for every pid to exit and returns the longest time since
// since; pids still alive at limit are returned as stuck.
func waitGone(pids []int, since time.Time, limit time.Duration) (max time.Duration, stuck []int) {
	alive := map[int]bool{}
	for _, p := range pids {
		alive[p] = true
	}
	for len(alive) > 0 {
		for p := range alive {
			if !pgtest.ProcessAlive(p) {
				delete(alive, p)
				if d := time.Since(since); d > max {
					max = d
				}
			}
		}
		if time.Since(since) > limit {
			for p := range alive {
				stuck = append(stuck, p)
			}
			return max, stuck
		}
		// Polling /proc: the latency measured is accurate to a millisecond.
		time.Sleep(time.Millisecond)
	}
	return max, nil
}

// mustExec runs SQL on conn, failing the test on error.
func mustExec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// isNoRows reports a query that found nothing.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// until is a pgtest.Eventually condition's result: done, or not yet and why.
func until(done bool, format string, args ...any) (bool, error) {
	if done {
		return true, nil
	}
	return false, fmt.Errorf(format, args...)
}

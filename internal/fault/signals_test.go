package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// stormWorkers: SPI loops in nested savepoints, and the two kinds of
// latch-using statements.
var stormWorkers = map[string]int{"spi": 2, "sleep": 2, "lock": 2}

// TestSignalStorm sends storms of SIGHUP, SIGUSR1 and SIGINT (by kill and
// by pg_cancel_backend), and configuration reloads, to busy workers while
// they run SPI loops and latch-using statements. Afterwards the same
// processes must still make progress, no error but a query cancel may have
// reached them, and the server must not have gone through crash recovery.
func TestSignalStorm(t *testing.T) {
	tb := track(t, "Signal storms during SPI loops and latch-using statements")
	tb.about("Six busy workers (2 running SPI in nested savepoints, 2 in `pg_sleep(0.05)`, 2 taking turns " +
		"on a row lock) get random SIGHUP, SIGUSR1 and SIGINT (kill and `pg_cancel_backend`) and " +
		"`pg_reload_conf()` for the storm's duration. Afterwards the same processes must make progress, " +
		"the only errors they saw must be query cancels (57014), and no crash recovery.")
	c := start(tb, nil, busySpec(stormWorkers))
	conn := c.Connect(tb)
	ctx := context.Background()
	names := busyNames(stormWorkers)
	sort.Strings(names)
	before := waitProgress(tb, conn, names, nil, 3, 30*time.Second, "busy workers making progress")

	storm := pick(3*time.Second, 60*time.Second)
	rng := rand.New(rand.NewPCG(2, 9))
	sent := map[string]int{}
	startStorm := time.Now()
	for time.Since(startStorm) < storm {
		k := names[rng.IntN(len(names))]
		pid := before[k].PID
		var err error
		switch n := rng.IntN(20); {
		case n < 6:
			err = syscall.Kill(pid, syscall.SIGHUP)
			sent["SIGHUP (kill)"]++
		case n < 12:
			err = syscall.Kill(pid, syscall.SIGUSR1)
			sent["SIGUSR1 (kill)"]++
		case n < 16:
			err = syscall.Kill(pid, syscall.SIGINT)
			sent["SIGINT (kill)"]++
		case n < 19:
			_, err = conn.Exec(ctx, "SELECT pg_cancel_backend($1)", pid)
			sent["SIGINT (pg_cancel_backend)"]++
		default:
			_, err = conn.Exec(ctx, "SELECT pg_reload_conf()")
			sent["SIGHUP to every process (pg_reload_conf)"]++
		}
		if err != nil {
			tb.Fatalf("signalling %s (pid %d): %v\n%s", k, pid, err, crashSummary(c, 10))
		}
		// Pacing, not synchronisation: about 2000 signals a second, which
		// leaves the workers time to run statements between them.
		time.Sleep(500 * time.Microsecond)
	}
	took := time.Since(startStorm)
	during := progressOf(tb, conn)
	after := waitProgress(tb, conn, names, during, 5, 30*time.Second, "progress after the storm")

	total := 0
	var kinds []string
	for k, v := range sent {
		total += v
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(kinds)
	tb.key("signals sent", "%d in %.1f s (%.0f/s): %s", total, took.Seconds(), float64(total)/took.Seconds(), strings.Join(kinds, ", "))
	var cancels, sighups, bad int64
	var unitsDuring []string
	for _, k := range names {
		cancels += after[k].Cancels
		sighups += after[k].Sighups
		bad += after[k].Bad
		unitsDuring = append(unitsDuring, fmt.Sprintf("%s %d", k, during[k].N-before[k].N))
		if after[k].PID != before[k].PID {
			tb.Errorf("%s was restarted during the storm: pid %d, then %d", k, before[k].PID, after[k].PID)
		}
		if after[k].Bad > 0 {
			tb.Errorf("%s saw %d errors other than query cancels, the last: %s", k, after[k].Bad, after[k].LastError)
		}
	}
	tb.fig("units of work done during the storm", "%s", strings.Join(unitsDuring, ", "))
	tb.key("statements cancelled (57014), seen by the workers", "%d", cancels)
	tb.fig("SIGHUPs seen by the workers", "%d", sighups)
	// The storm must have reached the workers, or it proved nothing.
	if cancels == 0 || sighups == 0 {
		tb.Errorf("the storm did not reach the workers: %d cancels, %d SIGHUPs seen", cancels, sighups)
	}
	tb.noCrash(c)
}

// latchWaiting reports whether every sleep and lock worker is in a
// latch-using wait right now: pg_sleep, or waiting for the row lock.
func latchWaiting(conn *pgx.Conn, kinds ...string) (bool, error) {
	var waiting, total int
	err := conn.QueryRow(context.Background(), `SELECT
		count(*) FILTER (WHERE wait_event = 'PgSleep' OR wait_event_type = 'Lock'), count(*)
		FROM pg_stat_activity WHERE backend_type = ANY($1)`, kinds).Scan(&waiting, &total)
	if err != nil {
		return false, err
	}
	return until(total > 0 && waiting == total, "%d of %d workers in a latch wait", waiting, total)
}

// TestSIGTERMDuringLatchWait terminates busy workers with
// pg_terminate_backend while their statements wait on the latch (pg_sleep, a
// row-lock wait). Each worker's loop ends its batch on SIGTERM and returns
// when its nap's WaitLatch reports it; with a 6 s naptime, a SIGTERM consumed
// by the statement shows as a worker that stays 6 s.
func TestSIGTERMDuringLatchWait(t *testing.T) {
	tb := track(t, "SIGTERM during latch-using statements")
	tb.about("`pg_terminate_backend` on 6 busy workers (naptime 6 s) at a moment when every `pg_sleep` and " +
		"row-lock worker is inside its latch wait: each must exit (code 0, \"leaving after SIGTERM\") in " +
		"under 5 s, and the nap that follows the batch SIGTERM ended must return at once (< 250 ms). A SIGTERM that the statement's own latch wait consumes leaves the worker asleep for " +
		"its whole naptime.")
	c := start(tb, nil, busySpec(stormWorkers), "PGGO_FAULT_NAPTIME=6000")
	conn := c.Connect(tb)
	ctx := context.Background()
	names := busyNames(stormWorkers)
	sort.Strings(names)
	prog := waitProgress(tb, conn, names, nil, 3, 30*time.Second, "busy workers making progress")
	pgtest.Eventually(tb, 20*time.Second, "every sleep and lock worker in a latch wait", func() (bool, error) {
		return latchWaiting(conn, "faultext_sleep", "faultext_lock")
	})
	var pids []int
	for _, k := range names {
		pids = append(pids, prog[k].PID)
	}
	start := time.Now()
	for _, pid := range pids {
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			tb.Fatal(err)
		}
	}
	maxGone, stuck := waitGone(pids, start, 30*time.Second)
	limit := 5 * time.Second
	tb.key("slowest exit after pg_terminate_backend", "%v", maxGone.Round(time.Millisecond))
	tb.fig("the workers' nap after SIGTERM (naptime 6 s)", "%s", naps(c.Log()))
	// Each batch ended because of the SIGTERM, so the nap that follows must
	// end at once: a longer one ended only because of its timeout or some
	// unrelated wake-up (a lock wait's deadlock timer, say).
	for _, m := range napRE.FindAllStringSubmatch(c.Log(), -1) {
		if ms, _ := strconv.Atoi(m[2]); ms > 250 {
			tb.Errorf("a %s worker's WaitLatch after SIGTERM slept %d ms instead of returning false at once", m[1], ms)
		}
	}
	if len(stuck) > 0 {
		tb.Fatalf("workers %v still alive 30 s after pg_terminate_backend", stuck)
	}
	if maxGone > limit {
		tb.Errorf("the slowest worker took %v to exit after SIGTERM, limit %v: the SIGTERM was consumed by the "+
			"statement's latch wait and WaitLatch slept its whole naptime", maxGone.Round(time.Millisecond), limit)
	}
	if n := c.CountLog(regexp.MustCompile(`faultext \w+ \d+: leaving after SIGTERM`)); n != len(pids) {
		tb.Errorf("%d of %d workers logged leaving after SIGTERM", n, len(pids))
	}
	tb.noCrash(c)
}

// TestLostWake: bgworker.Wake, called from a goroutine while the worker's
// statement waits on the latch (pg_sleep), must still end the worker's next
// WaitLatch at once.
func TestLostWake(t *testing.T) {
	tb := track(t, "bgworker.Wake during a latch-using statement")
	tb.about("A goroutine calls `bgworker.Wake` 20 ms into the worker's `SELECT pg_sleep(0.2)`; the " +
		"`WaitLatch(2 s)` after the statement must return at once (< 500 ms); 3 rounds (soak: 20).")
	rounds := pick(3, 20)
	c := start(tb, nil, "PGGO_FAULT_WORKERS=wake:1", "PGGO_FAULT_NAPTIME=2000", fmt.Sprintf("PGGO_FAULT_WAKE_ROUNDS=%d", rounds))
	conn := c.Connect(tb)
	results := waitResults(tb, c, conn, "faultext wake 0", "wake done", time.Duration(rounds)*5*time.Second)
	var waits []string
	lost := 0
	for i := 0; i < rounds; i++ {
		v := results[fmt.Sprintf("wake %d", i)]
		waits = append(waits, v+" ms")
		ms, err := strconv.Atoi(v)
		if err != nil {
			tb.Errorf("round %d: %s", i, v)
			continue
		}
		if ms > 500 {
			lost++
		}
	}
	if lost > 0 {
		tb.Errorf("%d of %d Wakes during pg_sleep were lost: the WaitLatch(2 s) after the statement slept until its timeout", lost, rounds)
	}
	tb.key("WaitLatch(2 s) after a Wake during pg_sleep", "%s", strings.Join(waits, ", "))
	tb.noCrash(c)
}

// waitResults waits for key in worker's fault_results (failing early on a
// crash) and returns all of the worker's results.
func waitResults(t testing.TB, c *pgtest.Cluster, conn *pgx.Conn, worker, key string, timeout time.Duration) map[string]string {
	t.Helper()
	ctx := context.Background()
	pgtest.Eventually(t, timeout, worker+" to record "+key, func() (bool, error) {
		if n := recoveries(c); n > 0 {
			t.Fatalf("crash recovery before %s recorded %q:\n%s\nlast case the worker logged: %s", worker, key, crashSummary(c, 10), lastCase(c))
		}
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM fault_results WHERE worker = $1 AND key = $2", worker, key).Scan(&n)
		return until(err == nil && n > 0, "not yet (%v)", err)
	})
	out, err := results(conn, worker)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var caseRE = regexp.MustCompile(`faultext params: case "([^"]*)"`)

// lastCase is the last params case the log names.
func lastCase(c *pgtest.Cluster) string {
	m := caseRE.FindAllStringSubmatch(c.Log(), -1)
	if len(m) == 0 {
		return "(none)"
	}
	return m[len(m)-1][1]
}

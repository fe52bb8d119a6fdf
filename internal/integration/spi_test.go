package integration

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// TestSPIData: types both ways, prepared plans, cursor streaming, error
// codes, savepoints; throughput is logged, not asserted.
func TestSPIData(t *testing.T) {
	c := startWith(t, "PGGO_TEST_WORKERS=data")
	conn := c.Connect(t)
	ctx := context.Background()

	if got := result(t, conn, "data", "types"); !regexp.MustCompile(`^ok \d+$`).MatchString(got) {
		t.Errorf("type round trips: %s", got)
	}
	if got := result(t, conn, "data", "prepared"); got != "prepared" {
		t.Errorf("Prepare: %s", got)
	}
	// sum of 2*i for i < 1000; the plan's context exists until Close.
	if got, want := result(t, conn, "data", "plan reuse"), "sum=999000 contexts before=1 after=0"; got != want {
		t.Errorf("plan reuse across 1000 transactions: %q, want %q", got, want)
	}
	if got, want := result(t, conn, "data", "errors"), `23505@0 22012@0 42601@40 42704`; got != want {
		t.Errorf("SQLSTATE@position: %q, want %q", got, want)
	}
	sp := result(t, conn, "data", "savepoints")
	if !regexp.MustCompile(`^rows=a,e first=after the failure: ERROR: current savepoint is aborted.* \(SQLSTATE 25P02\) inner=panic: nested panic$`).MatchString(sp) {
		t.Errorf("savepoints: %q", sp)
	}
	st := result(t, conn, "data", "streaming")
	m := regexp.MustCompile(`^rows=5000000 sum=12500002500000 peak_growth_kb=(\d+) rows_per_s=(\d+)$`).FindStringSubmatch(st)
	if m == nil {
		t.Fatalf("streaming 5M rows: %q", st)
	}
	// A cursor batch is 2000 rows: the worker's peak RSS may not grow by
	// more than 64 MB while reading 5M rows (a copy of all would be ~400 MB).
	if kb, _ := strconv.Atoi(m[1]); kb > 64*1024 {
		t.Errorf("reading 5M rows grew the worker's peak RSS by %d kB", kb)
	}
	t.Logf("streaming: %s", st)
	t.Logf("throughput inside one worker transaction: %s", result(t, conn, "data", "throughput"))

	// The same loops in PL/pgSQL, on the same server, for comparison.
	for _, q := range []string{
		`DO $$ DECLARE x int; BEGIN FOR i IN 1..100000 LOOP SELECT 1 INTO x; END LOOP; END $$`,
		`CREATE TABLE tp_plpgsql(i int8, s text)`,
		`DO $$ BEGIN FOR i IN 1..100000 LOOP INSERT INTO tp_plpgsql VALUES (i, 'x'); END LOOP; END $$`,
	} {
		start := time.Now()
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		if len(q) > 30 && q[:2] == "DO" {
			t.Logf("PL/pgSQL %.60s...: %.0f/s", q[12:], 100000/time.Since(start).Seconds())
		}
	}
	c.AssertNoCrashRecovery(t)
}

// TestJobQueue runs the README's guidance with three workers started
// together: the schema made once under an advisory lock, a partial index on
// the pending state, FOR UPDATE SKIP LOCKED batches drained while work
// remains. Every job is done exactly once and no worker fails.
func TestJobQueue(t *testing.T) {
	c := startWith(t, "PGGO_TEST_WORKERS=queue,queue,queue")
	conn := c.Connect(t)
	ctx := context.Background()
	var pids []int32
	pgtest.Eventually(t, 90*time.Second, "three queue workers ready", func() (bool, error) {
		rows, _ := conn.Query(ctx, "SELECT value::int4 FROM pggo_results WHERE worker = 'pggo_test_queue' AND key = 'ready'")
		var err error
		pids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
		return len(pids) == 3, err
	})
	createSetLatch(t, conn)
	const jobs = 3000
	if _, err := conn.Exec(ctx, "INSERT INTO queue_jobs(payload) SELECT g FROM generate_series(1, $1) g", jobs); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pggo_set_latch($1)", pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("pggo_set_latch(%d): %v, %v", pid, ok, err)
		}
	}
	pgtest.Eventually(t, 90*time.Second, "every job done", func() (bool, error) {
		var pending int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM queue_jobs WHERE state = 'pending'").Scan(&pending)
		return pending == 0, err
	})
	var done, maxAttempts, workers int
	if err := conn.QueryRow(ctx, "SELECT count(*), max(attempts), count(DISTINCT done_by) FROM queue_jobs WHERE state = 'done'").
		Scan(&done, &maxAttempts, &workers); err != nil {
		t.Fatal(err)
	}
	if done != jobs || maxAttempts != 1 {
		t.Fatalf("%d jobs done, at most %d times each; want %d, once", done, maxAttempts, jobs)
	}
	t.Logf("%d jobs done by %d workers", done, workers)
	// The workers' query is one the partial index serves.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, _ := tx.Query(ctx, "EXPLAIN SELECT id FROM queue_jobs WHERE state = 'pending' ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED")
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "queue_jobs_pending") {
		t.Errorf("the pending-jobs query does not use the partial index:\n%s", strings.Join(plan, "\n"))
	}
	if n := c.CountLog(regexp.MustCompile(`ERROR: `)); n != 0 {
		t.Fatalf("%d errors in the server log:\n%s", n, c.LogTail(40))
	}
	c.AssertNoCrashRecovery(t)
}

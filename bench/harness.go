package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// warmUpRead is the size of the small table every round's warm-up reads.
const warmUpRead = 1_000

// harness is one running cluster with its contenders.
type harness struct {
	cfg        Config
	libs       libraries
	cluster    *pgtest.Cluster
	ctl        *pgx.Conn // the harness's own session: jobs, checks, RSS look-ups
	contenders []contender
	expected   map[int64]int64 // read checksum by table size
}

// startCluster starts the cluster with both libraries preloaded and creates
// the schema the workloads use.
func startCluster(t testing.TB, cfg Config, libs libraries) *harness {
	t.Helper()
	cfg.logf("starting the cluster")
	c := pgtest.Start(t, pgtest.Options{
		Preload:    []string{libs.goLoader, libs.cLib},
		Extensions: []*pgtest.Extension{libs.background},
		Settings: map[string]string{
			// Background noise off: no autovacuum or checkpoints in the middle of a run.
			"autovacuum":           "off",
			"checkpoint_timeout":   "1h",
			"max_wal_size":         "8GB",
			"shared_buffers":       "512MB",
			"max_worker_processes": "16",
		},
	})
	h := &harness{cfg: cfg, libs: libs, cluster: c, expected: map[int64]int64{}}
	ctx := context.Background()
	var err error
	if h.ctl, err = pgx.Connect(ctx, c.ConnString()); err != nil {
		t.Fatalf("connect: %v\n%s", err, c.LogTail(40))
	}
	if err := h.setup(ctx); err != nil {
		t.Fatalf("setup: %v\n%s", err, c.LogTail(40))
	}
	h.contenders = []contender{
		&workerContender{h: h, contender: Go, backendType: "pggo_bench_go"},
		&workerContender{h: h, contender: C, backendType: "cbench"},
		&pgxContender{session{h: h}},
		&plpgsqlContender{session{h: h}},
	}
	return h
}

func (h *harness) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range h.contenders {
		c.close(ctx)
	}
	h.ctl.Close(ctx)
}

const schemaSQL = `
CREATE TABLE bench_jobs(
	id bigserial PRIMARY KEY,
	contender text NOT NULL,
	workload text NOT NULL,
	n int8 NOT NULL,
	status text NOT NULL DEFAULT 'pending',
	elapsed_ns int8, rows int8, checksum int8,
	rss_before_kb int8, rss_after_kb int8, hwm_kb int8, anon_after_kb int8, cpu_ns int8,
	go_mallocs int8, go_alloc_bytes int8, go_gcs int8,
	error text,
	created timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished timestamptz);
CREATE INDEX ON bench_jobs(contender, status);
CREATE TABLE bench_launch(contender text, job int8, seq int8, start_ns int8, first_ns int8, PRIMARY KEY (job, seq));
CREATE TABLE bench_ins_go(id int8, note text);
CREATE TABLE bench_ins_c(id int8, note text);
CREATE TABLE bench_ins_pgx(id int8, note text);
CREATE TABLE bench_ins_plpgsql(id int8, note text);

-- PL/pgSQL contender: every function measures itself with clock_timestamp().
CREATE FUNCTION bench_plpgsql_select1(n int8, OUT elapsed_s float8, OUT checksum int8) AS $$
DECLARE t0 timestamptz := clock_timestamp(); x int;
BEGIN
	checksum := 0;
	FOR i IN 1..n LOOP
		EXECUTE 'SELECT 1' INTO x;   -- dynamic SQL: parsed and planned each time
		checksum := checksum + x;
	END LOOP;
	elapsed_s := extract(epoch FROM clock_timestamp() - t0);
END $$ LANGUAGE plpgsql;

CREATE FUNCTION bench_plpgsql_queryrow(n int8, OUT elapsed_s float8, OUT checksum int8) AS $$
DECLARE t0 timestamptz := clock_timestamp(); x int;
BEGIN
	checksum := 0;
	FOR i IN 1..n LOOP
		SELECT 1 INTO x;             -- static SQL: PL/pgSQL's cached plan
		checksum := checksum + x;
	END LOOP;
	elapsed_s := extract(epoch FROM clock_timestamp() - t0);
END $$ LANGUAGE plpgsql;

CREATE FUNCTION bench_plpgsql_select1_prepared(n int8, OUT elapsed_s float8, OUT checksum int8) AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
	checksum := 0;
	FOR i IN 1..n LOOP
		PERFORM 1;                   -- SELECT 1 through SPI with PL/pgSQL's cached plan
		checksum := checksum + 1;
	END LOOP;
	elapsed_s := extract(epoch FROM clock_timestamp() - t0);
END $$ LANGUAGE plpgsql;

CREATE FUNCTION bench_plpgsql_insert(n int8, OUT elapsed_s float8, OUT checksum int8) AS $$
DECLARE t0 timestamptz := clock_timestamp(); note text := 'x';
BEGIN
	checksum := 0;
	FOR i IN 1..n LOOP
		INSERT INTO bench_ins_plpgsql(id, note) VALUES (i, note);
		checksum := checksum + 1;
	END LOOP;
	elapsed_s := extract(epoch FROM clock_timestamp() - t0);
END $$ LANGUAGE plpgsql;

CREATE PROCEDURE bench_plpgsql_insert_tx(n int8, INOUT elapsed_s float8, INOUT checksum int8) AS $$
DECLARE t0 timestamptz := clock_timestamp(); note text := 'x';
BEGIN
	checksum := 0;
	FOR i IN 1..n LOOP
		INSERT INTO bench_ins_plpgsql(id, note) VALUES (i, note);
		checksum := checksum + 1;
		COMMIT;
	END LOOP;
	elapsed_s := extract(epoch FROM clock_timestamp() - t0);
END $$ LANGUAGE plpgsql;

CREATE FUNCTION bench_plpgsql_read(tbl regclass, OUT elapsed_s float8, OUT nrows int8, OUT checksum int8) AS $$
DECLARE t0 timestamptz := clock_timestamp(); r record;
	v_id int8; v_t text; v_ts timestamptz; v_n text;
BEGIN
	nrows := 0; checksum := 0;
	FOR r IN EXECUTE format('SELECT id, t, ts, n FROM %s', tbl) LOOP
		v_id := r.id; v_t := r.t; v_ts := r.ts; v_n := r.n::text;
		checksum := checksum + v_id + length(v_t) + length(v_n) + (floor(extract(epoch FROM v_ts))::int8 % 1000);
		nrows := nrows + 1;
	END LOOP;
	elapsed_s := extract(epoch FROM clock_timestamp() - t0);
END $$ LANGUAGE plpgsql;
`

// setup creates the schema, the read tables and pggo_set_latch.
func (h *harness) setup(ctx context.Context) error {
	if _, err := h.ctl.Exec(ctx, schemaSQL); err != nil {
		return err
	}
	if _, err := h.ctl.Exec(ctx, fmt.Sprintf(
		"CREATE FUNCTION pggo_set_latch(int4) RETURNS bool AS %s, 'pggo_set_latch' LANGUAGE C STRICT",
		quoteLiteral(h.libs.goLoader))); err != nil {
		return err
	}
	if _, err := h.ctl.Exec(ctx, "CREATE EXTENSION background"); err != nil {
		return err
	}
	sizes := []int64{warmUpRead}
	for _, w := range selected(h.cfg.Only) {
		if w.Name == "read" {
			sizes = append(sizes, h.cfg.size(w), w.Smoke)
		}
	}
	for _, n := range sizes {
		if err := h.readTable(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// readTable creates bench_read_N (once) and records its checksum.
func (h *harness) readTable(ctx context.Context, n int64) error {
	if _, ok := h.expected[n]; ok {
		return nil
	}
	h.cfg.logf("creating bench_read_%d", n)
	tbl := fmt.Sprintf("bench_read_%d", n)
	if _, err := h.ctl.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s AS
		SELECT i::int8 AS id, md5(i::text) AS t,
		       '2024-01-01 00:00:00+00'::timestamptz + i * interval '1.25 s' AS ts,
		       (1000 + i * 0.01)::numeric(14,2) AS n
		FROM generate_series(1, %d) i`, tbl, n)); err != nil {
		return err
	}
	// Hint bits and the visibility map set now, not by the first reader.
	if _, err := h.ctl.Exec(ctx, "VACUUM (FREEZE, ANALYZE) "+tbl); err != nil {
		return err
	}
	var sum int64
	if err := h.ctl.QueryRow(ctx, fmt.Sprintf(`SELECT sum(id + length(t) + length(n::text)
		+ (floor(extract(epoch FROM ts))::int8 %% 1000))::int8 FROM %s`, tbl)).Scan(&sum); err != nil {
		return err
	}
	h.expected[n] = sum
	return nil
}

// newRound gives every contender a fresh process and waits until it is ready.
func (h *harness) newRound(ctx context.Context, restart bool) error {
	for _, c := range h.contenders {
		if err := c.stop(ctx, restart); err != nil {
			return fmt.Errorf("%s: %w", c.name(), err)
		}
	}
	for _, c := range h.contenders {
		if err := c.start(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.name(), err)
		}
	}
	// Let the fresh processes settle (Go starts its background goroutines).
	time.Sleep(200 * time.Millisecond)
	return nil
}

// warmUp runs every workload at its smoke size once per contender, unrecorded.
func (h *harness) warmUp(t testing.TB, ctx context.Context, ws []Workload) {
	t.Helper()
	for _, w := range ws {
		n := w.Smoke
		if w.Name == "read" {
			n = warmUpRead
		}
		if w.Name == "launch" {
			continue
		}
		for _, c := range h.contenders {
			if _, err := h.run(ctx, c, w, n); err != nil && !isSkip(err) {
				t.Fatalf("warm-up: %s %s: %v\n%s", c.name(), w.Name, err, h.cluster.LogTail(40))
			}
		}
	}
}

func isSkip(err error) bool {
	return err != nil && (errors.Is(err, ErrNotYet) || errors.Is(err, ErrNotApplicable))
}

// run runs one workload and checks its result: row count, checksum, and
// for inserts the rows in the table.
func (h *harness) run(ctx context.Context, c contender, w Workload, n int64) (Sample, error) {
	if strings.HasPrefix(w.Name, "insert") {
		if _, err := h.ctl.Exec(ctx, "TRUNCATE bench_ins_"+c.name()); err != nil {
			return Sample{}, err
		}
	}
	s, checksum, err := c.run(ctx, w, n)
	if err != nil {
		return s, err
	}
	wantRows, wantSum := n, n
	switch w.Name {
	case "read":
		wantSum = h.expected[n]
	case "launch":
		wantSum = checksum // nothing to add up; rows are checked
	}
	if s.Rows != wantRows || checksum != wantSum {
		return s, fmt.Errorf("wrong result: %d rows, checksum %d; want %d rows, checksum %d", s.Rows, checksum, wantRows, wantSum)
	}
	if strings.HasPrefix(w.Name, "insert") {
		var k int64
		if err := h.ctl.QueryRow(ctx, "SELECT count(*) FROM bench_ins_"+c.name()).Scan(&k); err != nil {
			return s, err
		}
		if k != n {
			return s, fmt.Errorf("bench_ins_%s has %d rows after %d INSERTs", c.name(), k, n)
		}
	}
	if !w.PerOpFromJob {
		s.PerOpNS = float64(s.ElapsedNS) / float64(n)
	}
	return s, nil
}

// contender runs workloads; see the constants Go, C, PGX, PLpgSQL.
type contender interface {
	name() string
	// stop ends the contender's process or session if restart is set
	// (a worker is restarted by the postmaster); start waits until a fresh
	// one is ready.
	stop(ctx context.Context, restart bool) error
	start(ctx context.Context) error
	// pid of the process that runs the loops (worker or backend).
	pid() int
	// run runs w with size n; ErrNotYet or ErrNotApplicable if it cannot.
	run(ctx context.Context, w Workload, n int64) (s Sample, checksum int64, err error)
	close(ctx context.Context)
}

// memory is what /proc/PID/status says of a process, in kB.
type memory struct {
	rss  int64 // VmRSS: resident, including shared memory pages touched
	hwm  int64 // VmHWM: peak VmRSS
	anon int64 // RssAnon: resident private memory (heap, stacks)
}

// resetPeak restarts pid's VmHWM from its current VmRSS (Linux ≥ 4.0).
func resetPeak(pid int) {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// readMemory reads the memory of pid.
func readMemory(pid int) (m memory, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	m = memory{-1, -1, -1}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			m.rss, _ = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			m.hwm, _ = strconv.ParseInt(f[1], 10, 64)
		case "RssAnon:":
			m.anon, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if m.rss < 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// ---------------------------------------------------------------------
// The Go and C workers: jobs in bench_jobs.

type workerContender struct {
	h           *harness
	contender   string // bench_jobs.contender
	backendType string
	workerPID   int
}

func (c *workerContender) name() string { return c.contender }
func (c *workerContender) pid() int     { return c.workerPID }

func (c *workerContender) stop(ctx context.Context, restart bool) error {
	if !restart || c.workerPID == 0 {
		return nil
	}
	// The workers leave SIGTERM to die(): FATAL, exit code 1, and the
	// postmaster starts them again after bgw_restart_time (1 s).
	_, err := c.h.ctl.Exec(ctx, "SELECT pg_terminate_backend($1)", c.workerPID)
	return err
}

// start waits for a worker other than the previous one to wait on its latch.
func (c *workerContender) start(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pid int
		var ev *string
		err := c.h.ctl.QueryRow(ctx, "SELECT pid, wait_event FROM pg_stat_activity WHERE backend_type = $1",
			c.backendType).Scan(&pid, &ev)
		if err == nil && pid != c.workerPID && ev != nil && *ev == "Extension" {
			c.workerPID = pid
			return nil
		}
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("worker %s not ready after 30 s (last: pid %d, err %v)", c.backendType, pid, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *workerContender) run(ctx context.Context, w Workload, n int64) (Sample, int64, error) {
	if w.Name == "do" && c.contender == C {
		return Sample{}, 0, fmt.Errorf("%w: a C worker has no goroutines to hand work over", ErrNotApplicable)
	}
	if strings.HasPrefix(w.Name, "bg_") {
		return Sample{}, 0, fmt.Errorf("%w: examples/background is called from a session", ErrNotApplicable)
	}
	var id int64
	if err := c.h.ctl.QueryRow(ctx, "INSERT INTO bench_jobs(contender, workload, n) VALUES ($1, $2, $3) RETURNING id",
		c.contender, w.Name, n).Scan(&id); err != nil {
		return Sample{}, 0, err
	}
	var ok bool
	if err := c.h.ctl.QueryRow(ctx, "SELECT pggo_set_latch($1)", c.workerPID).Scan(&ok); err != nil || !ok {
		return Sample{}, 0, fmt.Errorf("pggo_set_latch(%d): %v %v", c.workerPID, ok, err)
	}
	deadline := time.Now().Add(c.h.cfg.JobTimeout)
	for {
		var (
			status                              string
			elapsed, rows, checksum             *int64
			rssBefore, rssAfter, hwm, anon      *int64
			goMallocs, goAllocBytes, goGCs, cpu *int64
			errText                             *string
		)
		err := c.h.ctl.QueryRow(ctx, `SELECT status, elapsed_ns, rows, checksum, rss_before_kb, rss_after_kb, hwm_kb,
			anon_after_kb, cpu_ns, go_mallocs, go_alloc_bytes, go_gcs, error FROM bench_jobs WHERE id = $1`, id).Scan(
			&status, &elapsed, &rows, &checksum, &rssBefore, &rssAfter, &hwm, &anon, &cpu, &goMallocs, &goAllocBytes, &goGCs, &errText)
		if err != nil {
			return Sample{}, 0, err
		}
		switch status {
		case "pending":
			if !pgtest.ProcessAlive(c.workerPID) {
				return Sample{}, 0, fmt.Errorf("worker %s (pid %d) died during job %d", c.backendType, c.workerPID, id)
			}
			if time.Now().After(deadline) {
				return Sample{}, 0, fmt.Errorf("job %d not done after %v", id, c.h.cfg.JobTimeout)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		case "failed":
			msg := deref(errText)
			if strings.HasPrefix(msg, ErrNotYet.Error()) {
				return Sample{}, 0, fmt.Errorf("%w%s", ErrNotYet, strings.TrimPrefix(msg, ErrNotYet.Error()))
			}
			return Sample{}, 0, fmt.Errorf("job %d failed: %s", id, msg)
		}
		s := Sample{
			ElapsedNS: derefI(elapsed), CPUNS: derefI(cpu), Rows: derefI(rows),
			RSSBeforeKB: derefI(rssBefore), RSSAfterKB: derefI(rssAfter), HWMKB: derefI(hwm), AnonAfterKB: derefI(anon),
			GoMallocs: derefI(goMallocs), GoAllocBytes: derefI(goAllocBytes), GoGCs: derefI(goGCs),
		}
		if w.Name == "launch" {
			if err := c.launchLatencies(ctx, id, &s); err != nil {
				return s, 0, err
			}
		}
		return s, derefI(checksum), nil
	}
}

// launchLatencies reads the job's launch records: first line minus start.
func (c *workerContender) launchLatencies(ctx context.Context, job int64, s *Sample) error {
	rows, _ := c.h.ctl.Query(ctx, "SELECT first_ns - start_ns FROM bench_launch WHERE job = $1 ORDER BY seq", job)
	lat, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if int64(len(lat)) != s.Rows || len(lat) == 0 {
		return fmt.Errorf("launch job %d: %d records for %d launches", job, len(lat), s.Rows)
	}
	s.LaunchNS = lat
	f := make([]float64, len(lat))
	for i, v := range lat {
		f[i] = float64(v)
	}
	s.PerOpNS = median(f)
	return nil
}

func (c *workerContender) close(context.Context) {}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefI(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// ---------------------------------------------------------------------
// Sessions: the pgx client and PL/pgSQL each get their own connection.

type session struct {
	h          *harness
	conn       *pgx.Conn
	backendPID int
}

func (s *session) pid() int { return s.backendPID }

func (s *session) stop(ctx context.Context, restart bool) error {
	if s.conn != nil {
		s.conn.Close(ctx)
		s.conn = nil
	}
	return nil
}

func (s *session) start(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.h.cluster.ConnString())
	if err != nil {
		return err
	}
	s.conn = conn
	return conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&s.backendPID)
}

func (s *session) close(ctx context.Context) {
	if s.conn != nil {
		s.conn.Close(ctx)
	}
}

// timed runs fn and fills the sample's time and the backend's memory.
func (s *session) timed(fn func() (rows int64, err error)) (Sample, error) {
	var smp Sample
	resetPeak(s.backendPID)
	before, _ := readMemory(s.backendPID)
	t0 := time.Now()
	rows, err := fn()
	smp.ElapsedNS = time.Since(t0).Nanoseconds()
	smp.Rows = rows
	after, _ := readMemory(s.backendPID)
	smp.RSSBeforeKB, smp.RSSAfterKB, smp.HWMKB, smp.AnonAfterKB = before.rss, after.rss, after.hwm, after.anon
	return smp, err
}

// pgxContender runs the loops in this process through jackc/pgx v5.
type pgxContender struct{ session }

func (c *pgxContender) name() string { return PGX }

func (c *pgxContender) run(ctx context.Context, w Workload, n int64) (Sample, int64, error) {
	conn := c.conn
	var checksum int64
	inTx := func(fn func() error) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if err := fn(); err != nil {
			tx.Rollback(ctx)
			return err
		}
		return tx.Commit(ctx)
	}
	const insertSQL = "INSERT INTO bench_ins_pgx(id, note) VALUES ($1, $2)"
	var fn func() (int64, error)
	switch w.Name {
	case "select1":
		// No arguments: pgx uses the simple protocol, parsed and planned each time.
		fn = func() (int64, error) {
			return n, inTx(func() error {
				for i := int64(0); i < n; i++ {
					tag, err := conn.Exec(ctx, "SELECT 1")
					if err != nil {
						return err
					}
					checksum += tag.RowsAffected()
				}
				return nil
			})
		}
	case "queryrow":
		// pgx's default mode: prepared once per connection, then bound and run.
		fn = func() (int64, error) {
			return n, inTx(func() error {
				for i := int64(0); i < n; i++ {
					var x int64
					if err := conn.QueryRow(ctx, "SELECT 1").Scan(&x); err != nil {
						return err
					}
					checksum += x
				}
				return nil
			})
		}
	case "select1_prepared":
		fn = func() (int64, error) {
			return n, inTx(func() error {
				if _, err := conn.Prepare(ctx, "bench_select1", "SELECT 1"); err != nil {
					return err
				}
				for i := int64(0); i < n; i++ {
					tag, err := conn.Exec(ctx, "bench_select1")
					if err != nil {
						return err
					}
					checksum += tag.RowsAffected()
				}
				return conn.Deallocate(ctx, "bench_select1")
			})
		}
	case "insert", "insert_prepared":
		// pgx's default mode: prepared once per connection, then bound and
		// executed: the same loop for both workloads.
		fn = func() (int64, error) {
			return n, inTx(func() error {
				for i := int64(1); i <= n; i++ {
					tag, err := conn.Exec(ctx, insertSQL, i, "x")
					if err != nil {
						return err
					}
					checksum += tag.RowsAffected()
				}
				return nil
			})
		}
	case "insert_tx":
		fn = func() (int64, error) {
			for i := int64(1); i <= n; i++ {
				tag, err := conn.Exec(ctx, insertSQL, i, "x") // autocommit: one transaction each
				if err != nil {
					return 0, err
				}
				checksum += tag.RowsAffected()
			}
			return n, nil
		}
	case "read":
		fn = func() (rows int64, err error) {
			r, err := conn.Query(ctx, fmt.Sprintf("SELECT id, t, ts, n FROM bench_read_%d", n))
			if err != nil {
				return 0, err
			}
			defer r.Close()
			var (
				id  int64
				t   string
				ts  time.Time
				num string
			)
			for r.Next() {
				if err := r.Scan(&id, &t, &ts, &num); err != nil {
					return rows, err
				}
				checksum += id + int64(len(t)) + int64(len(num)) + ts.Unix()%1000
				rows++
			}
			return rows, r.Err()
		}
	case "bg_small":
		// Launch, run, stream back, read: one worker per round trip.
		fn = func() (int64, error) {
			for i := int64(0); i < n; i++ {
				var x int64
				if err := conn.QueryRow(ctx, "SELECT x FROM background_result(background_launch('SELECT 1')) AS (x int)").Scan(&x); err != nil {
					return i, err
				}
				checksum += x
			}
			return n, nil
		}
	case "bg_100k":
		fn = func() (int64, error) {
			var rows, bad int64
			err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE m <> md5(g::text))
				FROM background_result(background_launch($1)) AS (g int, m text)`,
				fmt.Sprintf("SELECT g, md5(g::text) FROM generate_series(1, %d) g", n)).Scan(&rows, &bad)
			if err == nil && bad != 0 {
				err = fmt.Errorf("%d rows with a wrong md5", bad)
			}
			checksum = rows
			return rows, err
		}
	default:
		return Sample{}, 0, fmt.Errorf("%w: a client cannot run %s", ErrNotApplicable, w.Name)
	}
	s, err := c.timed(fn)
	return s, checksum, err
}

// plpgsqlContender calls the bench_plpgsql_* functions; they time themselves.
type plpgsqlContender struct{ session }

func (c *plpgsqlContender) name() string { return PLpgSQL }

func (c *plpgsqlContender) run(ctx context.Context, w Workload, n int64) (Sample, int64, error) {
	var (
		elapsed  float64
		rows     = n
		checksum int64
		err      error
	)
	s, _ := c.timed(func() (int64, error) {
		switch w.Name {
		case "select1", "queryrow", "select1_prepared", "insert":
			err = c.conn.QueryRow(ctx, "SELECT elapsed_s, checksum FROM bench_plpgsql_"+w.Name+"($1)", n).Scan(&elapsed, &checksum)
		case "insert_prepared":
			// A static INSERT in PL/pgSQL is a cached plan already: the same function.
			err = c.conn.QueryRow(ctx, "SELECT elapsed_s, checksum FROM bench_plpgsql_insert($1)", n).Scan(&elapsed, &checksum)
		case "insert_tx":
			// COMMIT inside a procedure needs CALL outside a transaction block.
			err = c.conn.QueryRow(ctx, fmt.Sprintf("CALL bench_plpgsql_insert_tx(%d, NULL, NULL)", n),
				pgx.QueryExecModeSimpleProtocol).Scan(&elapsed, &checksum)
		case "read":
			err = c.conn.QueryRow(ctx, "SELECT elapsed_s, nrows, checksum FROM bench_plpgsql_read($1::regclass)",
				fmt.Sprintf("bench_read_%d", n)).Scan(&elapsed, &rows, &checksum)
		default:
			err = fmt.Errorf("%w: PL/pgSQL cannot run %s", ErrNotApplicable, w.Name)
		}
		return rows, err
	})
	if err != nil {
		return Sample{}, 0, err
	}
	s.ElapsedNS = int64(elapsed * 1e9) // the function's own clock, not the round trip
	return s, checksum, nil
}

// ---------------------------------------------------------------------
// Profiling with perf.

// profile runs every workload once more for the Go and C workers under
// `perf record -g` and writes the recordings and flat reports to PerfDir.
func (h *harness) profile(t testing.TB, ctx context.Context, ws []Workload) {
	t.Helper()
	dir, err := filepath.Abs(h.cfg.PerfDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.Name == "launch" {
			continue // short-lived processes: perf -p cannot follow them
		}
		for _, c := range h.contenders[:2] {
			base := filepath.Join(dir, fmt.Sprintf("%s-%s", c.name(), w.Name))
			rec := exec.Command("perf", "record", "-q", "-F", "1999", "-g", "-p", strconv.Itoa(c.pid()), "-o", base+".perf.data")
			rec.Stdout, rec.Stderr = os.Stderr, os.Stderr
			if err := rec.Start(); err != nil {
				t.Fatalf("perf record: %v", err)
			}
			time.Sleep(300 * time.Millisecond) // perf attaches
			s, err := h.run(ctx, c, w, h.cfg.size(w))
			rec.Process.Signal(syscall.SIGINT)
			rec.Wait()
			if isSkip(err) {
				os.Remove(base + ".perf.data")
				continue
			}
			if err != nil {
				t.Fatalf("profiling %s %s: %v", c.name(), w.Name, err)
			}
			h.cfg.logf("perf: %s %s: %.0f ns/%s -> %s.perf.data", c.name(), w.Name, s.PerOpNS, w.Unit, base)
			for _, rep := range []struct {
				suffix string
				args   []string
			}{
				{".self.txt", []string{"--no-children", "--sort", "dso,symbol", "-g", "none"}},
				{".children.txt", []string{"--children", "--sort", "symbol", "-g", "none"}},
			} {
				args := append([]string{"report", "-i", base + ".perf.data", "--stdio", "--percent-limit", "0.5"}, rep.args...)
				out, err := exec.Command("perf", args...).Output()
				if err != nil {
					t.Logf("perf report %s: %v", base, err)
					continue
				}
				os.WriteFile(base+rep.suffix, out, 0o644)
			}
		}
	}
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

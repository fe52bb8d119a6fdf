package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// The tests below port PostgreSQL's own tests of src/test/modules/worker_spi
// to examples/worker_spi: expected/worker_spi.out (the regression test of
// 15 and 16, run with the library preloaded) and t/001_worker_spi.pl (17
// and later: the library first loaded on demand, then preloaded). What
// differs is only what must: the cluster comes from pgtest, polls use
// pgtest.Eventually, and before PostgreSQL 17 a wait reports the Extension
// class's "Extension" (custom wait events and pg_wait_events are 17's) and
// BypassRoleLoginCheck fails with a clear error. t/002_worker_terminate.pl
// (19) is TestWorkerSPITerminate.
//
// What each upstream assertion sees here, on 15 / 17 / 18:
//
//	worker_spi.out: launch(4) IS NOT NULL; schema4.counted appears;
//	  total|1 after a delta and a reload                  t / t / t, as upstream
//	001: dynamic worker 4 launched, table, total|1        as upstream on all three
//	001: wait event of worker 4                           "Extension" / worker_spi_main / worker_spi_main
//	001: worker_spi_main in pg_wait_events                no such view (not checked) / t / t
//	001: 3 static workers in mydb, waiting                mydb|3|Extension / mydb|3|worker_spi_main / same
//	001: dynamic workers 10, 11 in mydb, postgres as myrole  as upstream (wait event as above)
//	001: noconndb refused, then accepted with ALLOWCONN   as upstream on all three
//	001: nologrole refused                                as upstream on all three
//	001: nologrole accepted with ROLELOGINCHECK           15: the worker's ERROR "needs PostgreSQL 17
//	                                                      or later" / 17, 18: as upstream
//	(ours) full server: worker_spi_launch returns NULL    NULL on all three, as upstream's C

// spiQuery runs query on conn and returns its rows as psql -A -t prints
// them: columns joined by '|', rows by newlines.
func spiQuery(ctx context.Context, conn *pgx.Conn, query string) (string, error) {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return "", err
		}
		cols := make([]string, len(vals))
		for i, v := range vals {
			if v != nil {
				cols[i] = fmt.Sprint(v)
			}
		}
		lines = append(lines, strings.Join(cols, "|"))
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// pollQuery is the TAP tests' poll_query_until: query until it returns want.
func pollQuery(t *testing.T, ctx context.Context, conn *pgx.Conn, query, want string) {
	t.Helper()
	pgtest.Eventually(t, 60*time.Second, fmt.Sprintf("%s = %q", query, want), func() (bool, error) {
		got, err := spiQuery(ctx, conn, query)
		if err == nil && got != want {
			err = fmt.Errorf("got %q", got)
		}
		return err == nil, err
	})
}

func mustQuery(t *testing.T, ctx context.Context, conn *pgx.Conn, query string) string {
	t.Helper()
	s, err := spiQuery(ctx, conn, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s
}

func serverVersionNum(t *testing.T, ctx context.Context, conn *pgx.Conn) int {
	t.Helper()
	var v int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// appendConf appends text to the cluster's postgresql.conf.
func appendConf(t *testing.T, c *pgtest.Cluster, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(c.DataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// connectDB connects to database db of c.
func connectDB(t *testing.T, c *pgtest.Cluster, db string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(c.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = db
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dynamicWorkerConsumes is the part both upstream tests share: launch
// worker 4 in the database of conn, wait for its table, insert a total and
// a delta, reload, and see the delta folded in.
func dynamicWorkerConsumes(t *testing.T, ctx context.Context, conn *pgx.Conn) {
	t.Helper()
	mustQuery(t, ctx, conn, "CREATE EXTENSION worker_spi")
	if got := mustQuery(t, ctx, conn, "SELECT worker_spi_launch(4) IS NOT NULL"); got != "true" {
		t.Fatalf("worker_spi_launch(4) IS NOT NULL = %q", got)
	}
	pollQuery(t, ctx, conn, `SELECT count(*) > 0 FROM information_schema.tables
		WHERE table_schema = 'schema4' AND table_name = 'counted'`, "true")
	mustQuery(t, ctx, conn, "INSERT INTO schema4.counted VALUES ('total', 0), ('delta', 1)")
	// A SIGHUP makes the worker loop once at once.
	mustQuery(t, ctx, conn, "SELECT pg_reload_conf()")
	pollQuery(t, ctx, conn, "SELECT count(*) FROM schema4.counted WHERE type = 'delta'", "0")
	if got := mustQuery(t, ctx, conn, "SELECT * FROM schema4.counted"); got != "total|1" {
		t.Fatalf("schema4.counted = %q, want total|1", got)
	}
}

// TestWorkerSPIRegress ports expected/worker_spi.out, which upstream runs
// with the library preloaded (dynamic.conf): static workers run, and
// worker_spi_launch(4) starts one more.
func TestWorkerSPIRegress(t *testing.T) {
	ext := pgtest.Build(t, sourcePath("examples/worker_spi"))
	c := pgtest.Start(t, pgtest.Options{Preload: []string{ext.Loader},
		Extensions: []*pgtest.Extension{ext},
		// Six slots, to fill them below.
		Settings: map[string]string{"worker_spi.database": "postgres", "max_worker_processes": "6"}})
	ctx := context.Background()
	conn := c.Connect(t)
	dynamicWorkerConsumes(t, ctx, conn)

	// The declared settings are PostgreSQL's (not in upstream's test).
	if got := mustQuery(t, ctx, conn, `SELECT name, setting, context, min_val, max_val FROM pg_settings
		WHERE name LIKE 'worker\_spi.%' ORDER BY name`); got != strings.Join([]string{
		"worker_spi.database|postgres|sighup||",
		"worker_spi.naptime|10|sighup|1|2147483647",
		"worker_spi.role||sighup||",
		"worker_spi.total_workers|2|postmaster|1|100"}, "\n") {
		t.Fatalf("pg_settings:\n%s", got)
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET worker_spi.naptime = 0"); err == nil ||
		!strings.Contains(err.Error(), `0 is outside the valid range for parameter "worker_spi.naptime" (1 .. 2147483647)`) {
		t.Fatalf("ALTER SYSTEM SET worker_spi.naptime = 0: %v", err)
	}
	if _, err := conn.Exec(ctx, "SET worker_spi.naptime = 5"); err == nil ||
		!strings.Contains(err.Error(), "cannot be changed now") {
		t.Fatalf("SET worker_spi.naptime = 5: %v", err)
	}

	// With every slot taken, worker_spi_launch returns NULL, as upstream's
	// (not in upstream's test). The logical replication launcher, the two
	// static workers and worker 4 hold four of the six slots.
	pollQuery(t, ctx, conn, `SELECT count(*) FROM pg_stat_activity
		WHERE backend_type IN ('logical replication launcher', 'worker_spi', 'worker_spi dynamic')`, "4")
	pid5 := mustQuery(t, ctx, conn, "SELECT worker_spi_launch(5)")
	pid6 := mustQuery(t, ctx, conn, "SELECT worker_spi_launch(6)")
	if pid5 == "" || pid6 == "" {
		t.Fatalf("worker_spi_launch(5), (6) with two free slots: %q, %q", pid5, pid6)
	}
	if got := mustQuery(t, ctx, conn, "SELECT worker_spi_launch(7) IS NULL"); got != "true" {
		t.Fatalf("worker_spi_launch(7) IS NULL with no free slot = %q", got)
	}
	// A slot freed by a terminated worker is usable again. The worker can
	// be signalled once it is in the process array, i.e. connected.
	pollQuery(t, ctx, conn, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid5, "1")
	mustQuery(t, ctx, conn, "SELECT pg_terminate_backend("+pid5+")")
	// SIGTERM is PostgreSQL's die(), as in C.
	c.WaitLog(t, regexp.MustCompile(`terminating background worker "worker_spi dynamic" due to administrator command`), 30*time.Second)
	pollQuery(t, ctx, conn, "SELECT worker_spi_launch(8) IS NOT NULL", "true")
	c.AssertNoCrashRecovery(t)
}

// TestWorkerSPITAP ports t/001_worker_spi.pl.
func TestWorkerSPITAP(t *testing.T) {
	ext := pgtest.Build(t, sourcePath("examples/worker_spi"))
	c := pgtest.Start(t, pgtest.Options{Extensions: []*pgtest.Extension{ext}})
	ctx := context.Background()
	conn := c.Connect(t)
	version := serverVersionNum(t, ctx, conn)
	// What a waiting worker reports.
	event := "worker_spi_main"
	if version < 170000 {
		event = "Extension"
	}

	// Dynamic workers, the library loaded on demand (not preloaded). With
	// no arguments they connect to worker_spi.database ("postgres").
	dynamicWorkerConsumes(t, ctx, conn)
	pollQuery(t, ctx, conn, "SELECT wait_event FROM pg_stat_activity WHERE backend_type ~ 'worker_spi'", event)
	// The library loaded on demand defined its settings in this backend
	// (not in upstream's test): bounds and all, the Postmaster one left a
	// placeholder.
	if got := mustQuery(t, ctx, conn, `SELECT name, setting, context, min_val FROM pg_settings
		WHERE name LIKE 'worker\_spi.%' ORDER BY name`); got != strings.Join([]string{
		"worker_spi.database|postgres|sighup|",
		"worker_spi.naptime|10|sighup|1",
		"worker_spi.role||sighup|"}, "\n") {
		t.Fatalf("pg_settings after loading on demand:\n%s", got)
	}
	if version >= 170000 {
		if got := mustQuery(t, ctx, conn, `SELECT count(*) > 0 FROM pg_wait_events
			WHERE type = 'Extension' AND name = 'worker_spi_main'`); got != "true" {
			t.Fatalf("worker_spi_main in pg_wait_events: %q", got)
		}
	}

	// Static workers, the library preloaded.
	mustQuery(t, ctx, conn, "CREATE DATABASE mydb")
	mustQuery(t, ctx, conn, "CREATE ROLE myrole SUPERUSER LOGIN")
	mydb := connectDB(t, c, "mydb")
	mustQuery(t, ctx, mydb, "CREATE EXTENSION worker_spi")
	mydb.Close(ctx)
	// As upstream, in postgresql.conf. (worker_spi.total_workers is a
	// Postmaster setting: PostgreSQL lets only a preloaded library define
	// one, so a backend that loaded it on demand keeps it a placeholder.)
	appendConf(t, c, `
shared_preload_libraries = 'worker_spi'
worker_spi.database = 'mydb'
worker_spi.total_workers = 3
max_worker_processes = 32
`)
	conn.Close(ctx)
	c.Restart(t)
	conn = c.Connect(t)
	mydb = connectDB(t, c, "mydb")
	pollQuery(t, ctx, mydb, `SELECT datname, count(datname), wait_event FROM pg_stat_activity
		WHERE backend_type = 'worker_spi' GROUP BY datname, wait_event`, "mydb|3|"+event)

	// Dynamic workers given a database and a role.
	oid := func(query string) string { t.Helper(); return mustQuery(t, ctx, mydb, query) }
	myrole := oid("SELECT oid FROM pg_roles WHERE rolname = 'myrole'")
	mydbID := oid("SELECT oid FROM pg_database WHERE datname = 'mydb'")
	postgresID := oid("SELECT oid FROM pg_database WHERE datname = 'postgres'")
	pid1 := mustQuery(t, ctx, mydb, fmt.Sprintf("SELECT worker_spi_launch(10, %s, %s)", mydbID, myrole))
	pid2 := mustQuery(t, ctx, mydb, fmt.Sprintf("SELECT worker_spi_launch(11, %s, %s)", postgresID, myrole))
	pollQuery(t, ctx, mydb, fmt.Sprintf(`SELECT datname, usename, wait_event FROM pg_stat_activity
		WHERE backend_type = 'worker_spi dynamic' AND pid IN (%s, %s) ORDER BY datname`, pid1, pid2),
		"mydb|myrole|"+event+"\npostgres|myrole|"+event)

	// BypassAllowConn.
	mustQuery(t, ctx, conn, "CREATE DATABASE noconndb ALLOW_CONNECTIONS false")
	noconndb := oid("SELECT oid FROM pg_database WHERE datname = 'noconndb'")
	// The launch may see the worker stop already: its error is no failure.
	conn.Exec(ctx, fmt.Sprintf("SELECT worker_spi_launch(12, %s, %s)", noconndb, myrole))
	c.WaitLog(t, regexp.MustCompile(`database "noconndb" is not currently accepting connections`), 30*time.Second)
	pid4 := mustQuery(t, ctx, conn, fmt.Sprintf(`SELECT worker_spi_launch(12, %s, %s, '{"ALLOWCONN"}')`, noconndb, myrole))
	pollQuery(t, ctx, conn, fmt.Sprintf(`SELECT datname, usename, wait_event FROM pg_stat_activity
		WHERE backend_type = 'worker_spi dynamic' AND pid IN (%s) ORDER BY datname`, pid4),
		"noconndb|myrole|"+event)

	// BypassRoleLoginCheck.
	mustQuery(t, ctx, conn, "CREATE ROLE nologrole WITH NOLOGIN")
	mustQuery(t, ctx, conn, "GRANT CREATE ON DATABASE mydb TO nologrole")
	nologrole := oid("SELECT oid FROM pg_roles WHERE rolname = 'nologrole'")
	conn.Exec(ctx, fmt.Sprintf("SELECT worker_spi_launch(13, %s, %s)", mydbID, nologrole))
	c.WaitLog(t, regexp.MustCompile(`role "nologrole" is not permitted to log in`), 30*time.Second)
	if version < 170000 {
		// BGWORKER_BYPASS_ROLELOGINCHECK is 17's: the worker says so.
		conn.Exec(ctx, fmt.Sprintf(`SELECT worker_spi_launch(13, %s, %s, '{"ROLELOGINCHECK"}')`, mydbID, nologrole))
		c.WaitLog(t, regexp.MustCompile(`bgworker.BypassRoleLoginCheck needs PostgreSQL 17 or later`), 30*time.Second)
	} else {
		pid5 := mustQuery(t, ctx, mydb, fmt.Sprintf(`SELECT worker_spi_launch(13, %s, %s, '{"ROLELOGINCHECK"}')`, mydbID, nologrole))
		pollQuery(t, ctx, mydb, fmt.Sprintf(`SELECT datname, usename, wait_event FROM pg_stat_activity
			WHERE backend_type = 'worker_spi dynamic' AND pid = %s`, pid5), "mydb|nologrole|"+event)
	}

	// A flag that is neither is refused, as upstream.
	if _, err := conn.Exec(ctx, `SELECT worker_spi_launch(14, 0, 0, '{"NOSUCHFLAG"}')`); err == nil ||
		!strings.Contains(err.Error(), "incorrect flag value found in array") {
		t.Fatalf("launch with a bad flag: %v", err)
	}
	c.AssertNoCrashRecovery(t)
}

// TestWorkerSPITerminate ports t/002_worker_terminate.pl (PostgreSQL 19):
// a dynamic worker connected to a database blocks CREATE DATABASE ...
// TEMPLATE, ALTER DATABASE RENAME / SET TABLESPACE and DROP DATABASE on it,
// unless it was registered interruptible (BGWORKER_INTERRUPTIBLE, which
// PostgreSQL 19 added), in which case those commands terminate it.
//
// What each upstream assertion sees, by version:
//
//	launch (worker initialized, in pg_stat_activity)     15, 17, 18: yes, as 19
//	CREATE DATABASE ... TEMPLATE blocked by the worker   15, 17, 18: yes, as 19 (after 5 s of retries:
//	                                                     upstream shortens them with an injection
//	                                                     point, which these builds lack)
//	the worker still runs after it                       15, 17, 18: yes, as 19
//	interruptible worker stopped by CREATE DATABASE ...
//	TEMPLATE, ALTER DATABASE RENAME, ALTER DATABASE SET
//	TABLESPACE, DROP DATABASE                            15, 17, 18: cannot run: worker_spi_launch(...,
//	                                                     true) fails, "EnableInterruptible
//	                                                     (BGWORKER_INTERRUPTIBLE) needs PostgreSQL 19
//	                                                     or later"; skipped with that reason
//
// Not in upstream's test: before 19, DROP DATABASE ... WITH (FORCE)
// terminates the workers connected to the database (what the README
// suggests there); checked on every version.
func TestWorkerSPITerminate(t *testing.T) {
	ext := pgtest.Build(t, sourcePath("examples/worker_spi"))
	c := pgtest.Start(t, pgtest.Options{Extensions: []*pgtest.Extension{ext}})
	ctx := context.Background()
	conn := c.Connect(t)
	version := serverVersionNum(t, ctx, conn)
	mustQuery(t, ctx, conn, "CREATE EXTENSION worker_spi")

	// waitLogAfter waits for re in the log written after offset.
	waitLogAfter := func(t *testing.T, offset int, re *regexp.Regexp) {
		t.Helper()
		pgtest.Eventually(t, 30*time.Second, "log line "+re.String(), func() (bool, error) {
			return re.MatchString(c.Log()[offset:]), nil
		})
	}
	// launch is upstream's launch_bgworker: from a session on db, a worker
	// in db; it returns the worker's pid once it has initialized.
	launch := func(t *testing.T, db string, testcase int, interruptible bool) string {
		t.Helper()
		offset := len(c.Log())
		dbc := connectDB(t, c, db)
		pid := mustQuery(t, ctx, dbc, fmt.Sprintf(`SELECT worker_spi_launch(%d, oid, 0, '{}', %t)
			FROM pg_database WHERE datname = current_database()`, testcase, interruptible))
		dbc.Close(ctx) // as psql's session ends: it would block the commands below
		waitLogAfter(t, offset, regexp.MustCompile(fmt.Sprintf(`LOG: .*worker_spi dynamic worker %d initialized with .*\..*`, testcase)))
		if got := mustQuery(t, ctx, conn, "SELECT count(*) > 0 FROM pg_stat_activity WHERE pid = "+pid); got != "true" {
			t.Fatalf("dynamic bgworker %d launched: %q", testcase, got)
		}
		return pid
	}
	terminated := regexp.MustCompile(`terminating background worker "worker_spi dynamic" due to administrator command`)
	// stoppedBy is upstream's run_bgworker_interruptible_test.
	stoppedBy := func(t *testing.T, command, pid string) {
		t.Helper()
		offset := len(c.Log())
		mustQuery(t, ctx, conn, command)
		waitLogAfter(t, offset, terminated)
		pollQuery(t, ctx, conn, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = "+pid, "true")
	}

	t.Run("a worker that is not interruptible blocks CREATE DATABASE TEMPLATE", func(t *testing.T) {
		launch(t, "postgres", 0, false)
		_, err := conn.Exec(ctx, "CREATE DATABASE testdb WITH TEMPLATE postgres")
		if err == nil || !strings.Contains(err.Error(), `source database "postgres" is being accessed by other users`) {
			t.Fatalf("CREATE DATABASE testdb WITH TEMPLATE postgres: %v", err)
		}
		if got := mustQuery(t, ctx, conn, "SELECT count(1) FROM pg_stat_activity WHERE backend_type = 'worker_spi dynamic'"); got != "1" {
			t.Fatalf("workers still running after CREATE DATABASE WITH TEMPLATE: %s, want 1", got)
		}
		mustQuery(t, ctx, conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'worker_spi dynamic'")
		pollQuery(t, ctx, conn, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'worker_spi dynamic'", "0")
	})

	if version < 190000 {
		t.Run("before 19, an interruptible worker is refused", func(t *testing.T) {
			_, err := conn.Exec(ctx, "SELECT worker_spi_launch(1, 0, 0, '{}', true)")
			if err == nil || !strings.Contains(err.Error(), "EnableInterruptible (BGWORKER_INTERRUPTIBLE) needs PostgreSQL 19 or later") {
				t.Fatalf("worker_spi_launch(1, 0, 0, '{}', true): %v", err)
			}
		})
	}
	// The four commands of upstream's cases 1 to 4, in order: each works on
	// the database the one before left.
	for i, tc := range []struct{ name, db, command string }{
		{"CREATE DATABASE WITH TEMPLATE", "postgres", "CREATE DATABASE testdb WITH TEMPLATE postgres"},
		{"ALTER DATABASE RENAME", "testdb", "ALTER DATABASE testdb RENAME TO renameddb"},
		{"ALTER DATABASE SET TABLESPACE", "renameddb", "ALTER DATABASE renameddb SET TABLESPACE test_tablespace"},
		{"DROP DATABASE", "renameddb", "DROP DATABASE renameddb"},
	} {
		t.Run("interruptible worker stopped by "+tc.name, func(t *testing.T) {
			if version < 190000 {
				t.Skipf("BGWORKER_INTERRUPTIBLE is PostgreSQL 19's; this server is %d", version)
			}
			if tc.name == "ALTER DATABASE SET TABLESPACE" {
				// An in-place tablespace (under pg_tblspc) needs no
				// directory owned by the server's user.
				mustQuery(t, ctx, conn, "SET allow_in_place_tablespaces = on")
				mustQuery(t, ctx, conn, "CREATE TABLESPACE test_tablespace LOCATION ''")
			}
			pid := launch(t, tc.db, i+1, true)
			stoppedBy(t, tc.command, pid)
		})
	}

	t.Run("DROP DATABASE WITH (FORCE) terminates a worker that is not interruptible", func(t *testing.T) {
		mustQuery(t, ctx, conn, "CREATE DATABASE forcedb")
		forcedb := connectDB(t, c, "forcedb")
		mustQuery(t, ctx, forcedb, "CREATE EXTENSION worker_spi")
		forcedb.Close(ctx)
		pid := launch(t, "forcedb", 5, false)
		stoppedBy(t, "DROP DATABASE forcedb WITH (FORCE)", pid)
	})
	c.AssertNoCrashRecovery(t)
}

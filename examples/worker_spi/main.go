// Command worker_spi is PostgreSQL's src/test/modules/worker_spi written with
// pggo: background workers, each owning a schema with a table "counted".
// Every naptime, a worker folds the 'delta' rows of its table into the
// single 'total' row and logs the new total.
//
// It has what the C module has:
//   - the settings worker_spi.naptime (seconds, reloadable, at least 1),
//     worker_spi.database and worker_spi.role (reloadable; what a worker
//     connects to when it is not told otherwise) and
//     worker_spi.total_workers (read at server start), declared with package
//     guc so that SHOW, ALTER SYSTEM and pg_settings know them;
//   - worker_spi.total_workers static workers (backend type "worker_spi")
//     when the library is preloaded;
//   - the SQL function worker_spi_launch(index, dboid, roleoid, flags,
//     interruptible), which starts a dynamic worker (backend type
//     "worker_spi dynamic") in database dboid as role roleoid (0: the
//     settings), with the connection bypasses named in flags ('ALLOWCONN',
//     'ROLELOGINCHECK'), terminated by DROP DATABASE and the like when
//     interruptible is true (PostgreSQL 19's BGWORKER_INTERRUPTIBLE), and
//     returns its pid, or NULL when no background worker slot is free;
//   - SIGTERM handled by PostgreSQL's die(), as in C: the worker ends with
//     FATAL "terminating background worker ... due to administrator
//     command" at its next wait or statement;
//   - the wait event worker_spi_main (a custom wait event on PostgreSQL 17
//     and later; "Extension" before);
//   - CREATE EXTENSION worker_spi (pggo build writes the control file and
//     the install script).
//
// See it working: `make demo` at the repository's top, or by hand:
//
//	go run ./cmd/pggo build ./examples/worker_spi      # prints two paths
//	# postgresql.conf:
//	#   shared_preload_libraries = '/abs/path/worker_spi.so'   (the last path)
//	#   worker_spi.total_workers = 2
//	#   worker_spi.naptime = 1          # seconds
//	psql -c "INSERT INTO schema1.counted VALUES ('total', 0), ('delta', 5)"
//	# a moment later the log says: worker_spi worker 1: count in "schema1"."counted" is now 5
package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
	"github.com/pggo/pggo/guc"
	"github.com/pggo/pggo/spi"
)

// The settings, declared in every process that loads the library.
var (
	naptime = guc.DefineInt("worker_spi.naptime",
		"Duration between each check (in seconds).", 10, 1, math.MaxInt32, guc.Sighup)
	database = guc.DefineString("worker_spi.database",
		"Database to connect to.", "postgres", guc.Sighup)
	role = guc.DefineString("worker_spi.role",
		"Role to connect with.", "", guc.Sighup)
	totalWorkers = guc.DefineInt("worker_spi.total_workers",
		"Number of workers.", 2, 1, 100, guc.Postmaster)
)

// waitEvent is what the workers' waits report in pg_stat_activity.
const waitEvent = "worker_spi_main"

func init() {
	bgworker.RegisterFunction("worker_spi_main", workerMain)
	fmgr.Register("worker_spi_launch",
		"(index int4, dboid oid DEFAULT 0, roleoid oid DEFAULT 0, flags text[] DEFAULT '{}', interruptible bool DEFAULT false) RETURNS int4 STRICT",
		launch)
	pggo.OnInit(registerWorkers)
}

// registerWorkers runs at server start when the library is preloaded: one
// worker per worker_spi.total_workers, numbered from 1. They connect to
// worker_spi.database as worker_spi.role.
func registerWorkers() error {
	n, err := totalWorkers.Get()
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		err := bgworker.New(fmt.Sprintf("worker_spi worker %d", i)).
			SetType("worker_spi").
			SetFunction("worker_spi_main").
			EnableSPIAccess().
			SetArgument(pggo.Int32Datum(int32(i))).
			Load()
		if err != nil {
			return err
		}
	}
	return nil
}

// target is where a dynamic worker connects, carried in its extra data.
type target struct {
	db, role pggo.Oid
	flags    []bgworker.ConnectFlag
}

func (t target) String() string {
	s := fmt.Sprintf("%d %d", t.db, t.role)
	for _, f := range t.flags {
		s += fmt.Sprintf(" %d", int(f))
	}
	return s
}

func parseTarget(s string) (target, error) {
	var t target
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return t, fmt.Errorf("worker_spi: bad extra data %q", s)
	}
	if _, err := fmt.Sscan(fields[0]+" "+fields[1], &t.db, &t.role); err != nil {
		return t, fmt.Errorf("worker_spi: bad extra data %q: %v", s, err)
	}
	for _, f := range fields[2:] {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil {
			return t, fmt.Errorf("worker_spi: bad extra data %q: %v", s, err)
		}
		t.flags = append(t.flags, bgworker.ConnectFlag(n))
	}
	return t, nil
}

// launch is worker_spi_launch: it starts a dynamic worker and returns its
// pid once it runs, or NULL when every background worker slot is taken.
func launch(args *fmgr.Args) (any, error) {
	var index int32
	var dboid, roleoid pggo.Oid
	var flags []*string
	var interruptible bool
	if err := args.Scan(&index, &dboid, &roleoid, &flags, &interruptible); err != nil {
		return nil, err
	}
	t := target{db: dboid, role: roleoid}
	for _, f := range flags {
		switch {
		case f == nil:
			return nil, &pggo.Error{SQLState: "0A000", Message: "flags array must not contain nulls"}
		case *f == "ALLOWCONN":
			t.flags = append(t.flags, bgworker.BypassAllowConn)
		case *f == "ROLELOGINCHECK":
			t.flags = append(t.flags, bgworker.BypassRoleLoginCheck)
		default:
			return nil, &pggo.Error{SQLState: "0A000", Message: "incorrect flag value found in array"}
		}
	}
	// 0 means the settings, looked up now (an unknown name is an error here).
	if t.db == 0 {
		name, err := database.Get()
		if err != nil {
			return nil, err
		}
		if err := lookupOID("SELECT oid FROM pg_database WHERE datname = $1", name, "database", &t.db); err != nil {
			return nil, err
		}
	}
	if t.role == 0 {
		name, err := role.Get()
		if err != nil {
			return nil, err
		}
		if name != "" {
			if err := lookupOID("SELECT oid FROM pg_roles WHERE rolname = $1", name, "role", &t.role); err != nil {
				return nil, err
			}
		}
	}
	b := bgworker.New(fmt.Sprintf("worker_spi dynamic worker %d", index)).
		SetType("worker_spi dynamic").
		SetFunction("worker_spi_main").
		EnableSPIAccess().
		SetArgument(pggo.Int32Datum(index)).
		SetExtra(t.String()).
		SetNotifyPID(os.Getpid())
	if interruptible {
		b.EnableInterruptible() // refused before PostgreSQL 19, naming the field
	}
	w, err := b.LoadDynamic()
	if errors.Is(err, bgworker.ErrNoSlot) {
		return nil, nil // as in C: a full server is NULL, not an error
	}
	if err != nil {
		return nil, err
	}
	pid, err := w.WaitForStartup()
	if err != nil {
		return nil, err
	}
	return int32(pid), nil
}

// lookupOID reads the OID of the database or role name, in the caller's
// transaction.
func lookupOID(query, name, what string, oid *pggo.Oid) error {
	var n int64
	err := spi.QueryRow(query, name).Scan(&n)
	if errors.Is(err, spi.ErrNoRows) {
		return &pggo.Error{SQLState: "42704", Message: fmt.Sprintf("%s %q does not exist", what, name)}
	}
	*oid = pggo.Oid(n)
	return err
}

// workerMain is one worker's life. Its argument is the worker's number.
func workerMain(arg pggo.Datum) error {
	index := arg.Int32()
	schema := fmt.Sprintf("schema%d", index)
	table := quoteIdent(schema) + "." + quoteIdent("counted")

	// SIGHUP wakes the latch below. SIGTERM keeps PostgreSQL's die(), as in
	// C: the worker ends with FATAL (exit code 1, not restarted) at its next
	// wait or statement, which is what pg_terminate_backend and PostgreSQL
	// 19's termination of interruptible workers rely on.
	bgworker.AttachSignalHandlers(bgworker.SIGHUP)

	if err := connect(); err != nil {
		return err
	}
	bgworker.Logf("%s initialized with %s.counted", bgworker.Name(), schema)
	if err := initialize(schema); err != nil {
		return err
	}
	if err := bgworker.SetWaitEvent(waitEvent); err != nil {
		return err
	}

	// Identifiers cannot be parameters; values always are.
	fold := `WITH deleted AS (DELETE FROM ` + table + ` WHERE type = 'delta' RETURNING value),
	              total AS (SELECT coalesce(sum(value), 0) AS sum FROM deleted)
	         UPDATE ` + table + ` SET value = counted.value + total.sum
	           FROM total WHERE type = 'total' RETURNING counted.value`

	// Background workers must not sleep: they wait on their latch, so that
	// SIGTERM, SIGHUP or postmaster death wake them at once. WaitLatch
	// reloads postgresql.conf after a SIGHUP, so naptime is read each time.
	for bgworker.WaitLatch(readNaptime()) {
		err := bgworker.Transaction(func() error {
			bgworker.ReportActivity(fold)
			defer bgworker.ReportActivity("")
			rows, err := spi.Query(fold)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var total *int64
				if err := rows.Scan(&total); err != nil {
					return err
				}
				if total != nil {
					bgworker.Logf("%s: count in %s is now %d", bgworker.Name(), table, *total)
				}
			}
			return rows.Err()
		})
		if err != nil {
			return err // logged as ERROR; not restarted, as in C
		}
	}
	return nil // postmaster death
}

// connect connects as a dynamic worker was told to (its extra data), or, for
// a static worker, to worker_spi.database as worker_spi.role.
func connect() error {
	if extra := bgworker.Extra(); extra != "" {
		t, err := parseTarget(extra)
		if err != nil {
			return err
		}
		if t.db != 0 {
			return bgworker.ConnectWorkerToSPIByOID(t.db, t.role, t.flags...)
		}
	}
	db, err := database.Get()
	if err != nil {
		return err
	}
	user, err := role.Get()
	if err != nil {
		return err
	}
	return bgworker.ConnectWorkerToSPI(db, user)
}

// initialize creates the worker's schema and table if they do not exist.
// As in C, the table starts empty: insert the 'total' row yourself.
func initialize(schema string) error {
	return bgworker.Transaction(func() error {
		bgworker.ReportActivity("initializing worker_spi schema")
		defer bgworker.ReportActivity("")
		var exists bool
		if err := spi.QueryRow("SELECT count(*) > 0 FROM pg_namespace WHERE nspname = $1", schema).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		_, err := spi.Exec("CREATE SCHEMA " + quoteIdent(schema) +
			" CREATE TABLE counted (type text CHECK (type IN ('total', 'delta')), value integer)" +
			" CREATE UNIQUE INDEX counted_unique_total ON counted (type) WHERE type = 'total'")
		return err
	})
}

// readNaptime reads worker_spi.naptime (seconds).
func readNaptime() time.Duration {
	n, err := naptime.Get()
	if err != nil {
		bgworker.Warning(fmt.Sprintf("worker_spi.naptime: %v; using %d s", err, n))
	}
	return time.Duration(n) * time.Second
}

// quoteIdent quotes an SQL identifier as PostgreSQL's quote_ident does.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func main() {}

// Command worker_spi is PostgreSQL's src/test/modules/worker_spi written with
// pggo: N background workers, each owning a schema with a table "counted".
// Every naptime, a worker folds the 'delta' rows of its table into the
// single 'total' row and logs the new total.
//
// It demonstrates a static worker's whole life: registration from OnInit
// driven by configuration, SIGHUP (reload naptime) and SIGTERM handling, the
// latch loop, transactions with SPI, and pg_stat_activity reporting.
//
// See it working: `make demo` at the repository's top, or by hand:
//
//	go run ./cmd/pggo build ./examples/worker_spi      # prints two paths
//	# postgresql.conf:
//	#   shared_preload_libraries = '/abs/path/worker_spi.so'   (the last path)
//	#   worker_spi.total_workers = 2
//	#   worker_spi.naptime = 1          # seconds
//	psql -c "INSERT INTO schema1.counted VALUES ('delta', 5)"
//	# a moment later the log says: worker_spi worker 1: count in schema1.counted is now 5
package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/guc"
	"github.com/pggo/pggo/spi"
)

func init() {
	bgworker.RegisterFunction("worker_spi_main", workerMain)
	pggo.OnInit(registerWorkers)
}

// registerWorkers runs at server start: one worker per
// worker_spi.total_workers (default 2), numbered from 1.
func registerWorkers() error {
	n, err := guc.Int("worker_spi.total_workers", 2)
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		err := bgworker.New(fmt.Sprintf("worker_spi worker %d", i)).
			SetType("worker_spi").
			SetFunction("worker_spi_main").
			EnableSPIAccess().
			SetRestartTime(time.Second).
			SetArgument(pggo.Int32Datum(int32(i))).
			Load()
		if err != nil {
			return err
		}
	}
	return nil
}

// workerMain is one worker's life. Its argument is the worker's number.
func workerMain(arg pggo.Datum) error {
	index := arg.Int32()
	schema := fmt.Sprintf("schema%d", index)
	table := quoteIdent(schema) + "." + quoteIdent("counted")

	// Handle SIGHUP and SIGTERM ourselves: both wake the latch below.
	bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)

	database, _, err := guc.Get("worker_spi.database")
	if err != nil {
		return err
	}
	if database == "" {
		database = "postgres"
	}
	if err := bgworker.ConnectWorkerToSPI(database, ""); err != nil {
		return err
	}
	if err := initialize(schema, table); err != nil {
		return err
	}
	bgworker.Logf("%s initialized with %s", bgworker.Name(), table)

	// Identifiers cannot be parameters; values always are.
	fold := `WITH deleted AS (DELETE FROM ` + table + ` WHERE type = 'delta' RETURNING value),
	              total AS (SELECT coalesce(sum(value), 0) AS sum FROM deleted)
	         UPDATE ` + table + ` SET value = counted.value + total.sum
	           FROM total WHERE type = 'total' RETURNING counted.value`

	naptime := readNaptime()
	// Background workers must not sleep: they wait on their latch, so that
	// SIGTERM, SIGHUP or postmaster death wake them at once.
	for bgworker.WaitLatch(naptime) {
		if bgworker.SighupReceived() {
			// WaitLatch has already reloaded postgresql.conf.
			naptime = readNaptime()
		}
		err := bgworker.Transaction(func() error {
			bgworker.ReportActivity(fold)
			defer bgworker.ReportActivity("")
			var total int64
			if err := spi.QueryRow(fold).Scan(&total); err != nil {
				return err
			}
			bgworker.Logf("%s: count in %s is now %d", bgworker.Name(), table, total)
			return nil
		})
		if err != nil {
			return err // logged as ERROR; restarted after its restart time (1 s)
		}
	}
	return nil // SIGTERM: exit code 0
}

// initialize creates the worker's schema and table if they do not exist.
func initialize(schema, table string) error {
	return bgworker.Transaction(func() error {
		var exists bool
		if err := spi.QueryRow("SELECT count(*) > 0 FROM pg_namespace WHERE nspname = $1", schema).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		if _, err := spi.Exec("CREATE SCHEMA " + quoteIdent(schema) +
			" CREATE TABLE counted (type text CHECK (type IN ('total', 'delta')), value integer)" +
			" CREATE UNIQUE INDEX counted_unique_total ON counted ((type = 'total')) WHERE type = 'total'"); err != nil {
			return err
		}
		_, err := spi.Exec("INSERT INTO " + table + " VALUES ('total', 0)")
		return err
	})
}

// readNaptime reads worker_spi.naptime (seconds, default 10).
func readNaptime() time.Duration {
	d, err := guc.Duration("worker_spi.naptime", time.Second, 10*time.Second)
	if err != nil || d <= 0 {
		bgworker.Warning(fmt.Sprintf("worker_spi.naptime: %v; using 10s", err))
		return 10 * time.Second
	}
	return d
}

// quoteIdent quotes an SQL identifier as PostgreSQL's quote_ident does.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func main() {}

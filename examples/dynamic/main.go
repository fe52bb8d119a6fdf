// Command dynamic shows dynamic background workers launched from SQL: a Go
// function callable from SQL starts N workers, each doubles its share of the
// rows of a table and exits with code 0; the function waits for all of them.
//
// See it working (after building with `pggo build ./examples/dynamic` and
// preloading, or just loading, build/dynamic.so):
//
//	psql -f examples/dynamic/build/dynamic.sql    # CREATE FUNCTION dynamic_process(...)
//	CREATE TABLE dynamic_items(id int PRIMARY KEY, value int, doubled int, worker int);
//	INSERT INTO dynamic_items SELECT g, g, NULL, NULL FROM generate_series(1, 1000) g;
//	SELECT dynamic_process(4);                    -- 4: every worker exited with code 0
//	SELECT worker, count(*), sum(doubled) FROM dynamic_items GROUP BY worker;
//
// Data reaches a dynamic worker by value only: its number as the Datum
// argument, and the database OID and worker count as text in bgw_extra
// (127 bytes at most), the pattern PostgreSQL's worker_spi uses. Pointers
// would mean nothing in the worker's process.
package main

import (
	"fmt"
	"os"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
	"github.com/pggo/pggo/spi"
)

func init() {
	bgworker.RegisterFunction("dynamic_worker_main", workerMain)
	fmgr.Register("dynamic_process", "(nworkers int4) RETURNS int4 STRICT", process)
}

// process launches the workers, waits for each to exit and returns how many
// did. It runs in the calling backend; EXECUTE is revoked from PUBLIC by the
// generated SQL, so only roles granted it can start processes.
func process(args *fmgr.Args) (any, error) {
	var n int32
	if err := args.Scan(&n); err != nil {
		return nil, err
	}
	if n < 1 || n > 64 {
		return nil, &pggo.Error{SQLState: "22023", Message: fmt.Sprintf("nworkers must be between 1 and 64, got %d", n)}
	}
	var workers []*bgworker.DynamicWorker
	for i := int32(0); i < n; i++ {
		w, err := bgworker.New(fmt.Sprintf("dynamic worker %d of %d", i+1, n)).
			SetType("dynamic").
			SetFunction("dynamic_worker_main").
			EnableSPIAccess().
			SetArgument(pggo.Int32Datum(i)).
			SetExtra(fmt.Sprintf("%d %d", bgworker.DatabaseOID(), n)).
			SetNotifyPID(os.Getpid()). // so that this backend can wait for it
			LoadDynamic()
		if err != nil {
			// Stop the ones already started before reporting.
			for _, w := range workers {
				w.Terminate().WaitForShutdown()
			}
			return nil, err
		}
		workers = append(workers, w)
	}
	done := 0
	for _, w := range workers {
		if err := w.WaitForShutdown(); err != nil {
			return nil, err
		}
		done++
	}
	return done, nil
}

// workerMain processes the rows whose id falls to this worker, then exits 0.
func workerMain(arg pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGTERM)
	var db pggo.Oid
	var n int32
	if _, err := fmt.Sscanf(bgworker.Extra(), "%d %d", &db, &n); err != nil {
		return fmt.Errorf("bgw_extra %q: %w", bgworker.Extra(), err)
	}
	if err := bgworker.ConnectWorkerToSPIByOID(db, 0); err != nil {
		return err
	}
	index := arg.Int32()
	return bgworker.Transaction(func() error {
		_, err := spi.Exec("UPDATE dynamic_items SET doubled = value * 2, worker = $1 WHERE id % $2 = $3",
			index+1, n, index)
		return err
	})
}

func main() {}

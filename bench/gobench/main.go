// Command gobench is the pggo extension of the benchmark harness (package
// github.com/pggo/pggo/bench): one static Go background worker running the
// same loops as the C worker in bench/cbench, through pggo's public API only
// (bgworker.Transaction, spi.Exec, spi.Query, spi.Prepare,
// bgworker.LoadDynamic).
//
// The worker, "pggo bench go" (backend_type pggo_bench_go), connects to the
// database named by the custom setting gobench.database (default
// "postgres") and sleeps on its latch. The harness inserts a row into
// bench_jobs (contender 'go') and sets the worker's latch; the worker takes
// the oldest pending job, runs it, timing it inside the process with Go's
// monotonic clock, and writes back the elapsed time, the process's CPU time
// (getrusage, all threads), the rows it handled, a checksum, its memory
// (VmRSS, RssAnon, and VmHWM reset at the job's start, from
// /proc/self/status) and the Go allocations the job made (runtime.MemStats,
// read outside the timed part).
//
// A workload whose pggo API is still a stub fails with an error starting
// "not yet measurable" (the stub's "not implemented" error is translated),
// which the harness reports as such rather than as a failure; it is
// measured as soon as the API works, with no change here. The "launch"
// workload starts dynamic workers (function gobench_launched) that record
// when their first line of Go ran.
//
// SIGTERM is left to PostgreSQL's die(): pg_terminate_backend ends the
// worker with exit code 1 and the postmaster restarts it after a second,
// which is how the harness gets a fresh process for every round.
//
// The worker imports nothing beyond pggo's packages and the standard library
// they use, so that its Go library, and with it the launch time and memory
// measured, is that of a minimal pggo extension. Profile it from outside
// with perf (the harness's -perf flag).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/pggo/pggo/shmem"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/guc"
	"github.com/pggo/pggo/spi"
)

func init() {
	bgworker.RegisterFunction("gobench_main", benchMain)
	bgworker.RegisterFunction("gobench_launched", launchedMain)
	bgworker.RegisterFunction("gobench_queue_sender", queueSender)
	pggo.OnInit(func() error {
		return bgworker.New("pggo bench go").
			SetType("pggo_bench_go").
			SetLibrary("gobench").
			SetFunction("gobench_main").
			EnableSPIAccess().
			SetRestartTime(time.Second).
			Load()
	})
}

// job is one row of bench_jobs.
type job struct {
	id       int64
	workload string
	n        int64
}

// outcome is what a workload reports besides its time.
type outcome struct {
	rows, checksum int64
}

// errNotYet marks workloads the public API cannot express yet.
var errNotYet = errors.New("not yet measurable")

// workloads maps bench_jobs.workload to its loop.
var workloads = map[string]func(j job) (outcome, error){
	"select1":          select1,
	"queryrow":         queryRow,
	"select1_prepared": select1Prepared,
	"insert":           insert,
	"insert_prepared":  insertPrepared,
	"insert_tx":        insertTx,
	"read":             read,
	"launch":           launch,
	"do":               doRoundTrip,
	"queue_64":         queueReceive(64),
	"queue_8k":         queueReceive(8192),
}

// notYet turns the error of an API that is still a stub into errNotYet.
func notYet(what string, err error) error {
	if err != nil && strings.Contains(err.Error(), "not implemented") {
		return fmt.Errorf("%w: %s: %v", errNotYet, what, err)
	}
	return err
}

func benchMain(pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP)
	db, _, err := guc.Get("gobench.database")
	if err != nil {
		return err
	}
	if db == "" {
		db = "postgres"
	}
	if err := bgworker.ConnectWorkerToSPI(db, ""); err != nil {
		return err
	}
	for bgworker.WaitLatch(time.Minute) {
		for {
			j, ok, err := nextJob()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := runJob(j); err != nil {
				return err
			}
		}
	}
	return nil
}

func nextJob() (j job, ok bool, err error) {
	err = bgworker.Transaction(func() error {
		err := spi.QueryRow(`SELECT id, workload, n FROM bench_jobs
			WHERE contender = 'go' AND status = 'pending' ORDER BY id LIMIT 1`).Scan(&j.id, &j.workload, &j.n)
		if err == spi.ErrNoRows {
			return nil
		}
		ok = err == nil
		return err
	})
	return j, ok, err
}

// runJob runs j and records its result; only failing to record is an error.
func runJob(j job) error {
	fn := workloads[j.workload]
	if fn == nil {
		fn = func(job) (outcome, error) { return outcome{}, fmt.Errorf("unknown workload %q", j.workload) }
	}
	resetPeak()
	rssBefore, _, _ := readMemory()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	bgworker.ReportActivity(j.workload)

	c0 := cpuTime()
	t0 := time.Now()
	out, err := fn(j)
	elapsed := time.Since(t0)
	cpu := cpuTime() - c0

	bgworker.ReportActivity("")
	runtime.ReadMemStats(&ms1)
	rssAfter, hwm, anon := readMemory()

	var errText any // NULL when the job succeeded
	if err != nil {
		errText = err.Error()
	}
	return bgworker.Transaction(func() error {
		_, err := spi.Exec(`UPDATE bench_jobs SET
			status = CASE WHEN $7::text IS NULL THEN 'done' ELSE 'failed' END,
			elapsed_ns = $1, rows = $2, checksum = $3,
			rss_before_kb = $4, rss_after_kb = $5, hwm_kb = $6, error = $7,
			go_mallocs = $9, go_alloc_bytes = $10, go_gcs = $11, anon_after_kb = $12, cpu_ns = $13,
			finished = clock_timestamp() WHERE id = $8`,
			elapsed.Nanoseconds(), out.rows, out.checksum, rssBefore, rssAfter, hwm, errText, j.id,
			int64(ms1.Mallocs-ms0.Mallocs), int64(ms1.TotalAlloc-ms0.TotalAlloc), int64(ms1.NumGC-ms0.NumGC), anon, cpu)
		return err
	})
}

// select1 runs SELECT 1 n times in one transaction; spi.Exec without
// arguments is SPI_execute: parsed and planned each time.
func select1(j job) (o outcome, err error) {
	n := j.n
	err = bgworker.Transaction(func() error {
		for i := int64(0); i < n; i++ {
			k, err := spi.Exec("SELECT 1")
			if err != nil {
				return err
			}
			o.checksum += k
		}
		return nil
	})
	o.rows = n
	return o, err
}

// queryRow reads SELECT 1 n times with spi.QueryRow and Scan, in one
// transaction: the code a user writes first for a single value.
func queryRow(j job) (o outcome, err error) {
	n := j.n
	err = bgworker.Transaction(func() error {
		for i := int64(0); i < n; i++ {
			var x int64
			if err := spi.QueryRow("SELECT 1").Scan(&x); err != nil {
				return err
			}
			o.checksum += x
		}
		return nil
	})
	o.rows = n
	return o, err
}

// select1Prepared prepares SELECT 1 once and runs it n times, in one
// transaction.
func select1Prepared(j job) (o outcome, err error) {
	n := j.n
	err = bgworker.Transaction(func() error {
		stmt, err := spi.Prepare("SELECT 1")
		if err != nil {
			return notYet("spi.Prepare", err)
		}
		defer stmt.Close()
		for i := int64(0); i < n; i++ {
			k, err := stmt.Exec()
			if err != nil {
				return notYet("spi.Stmt.Exec", err)
			}
			o.checksum += k
		}
		return nil
	})
	o.rows = n
	return o, err
}

const insertSQL = "INSERT INTO bench_ins_go(id, note) VALUES ($1, $2)"

// insert runs n single-row INSERTs with bound parameters in one transaction.
func insert(j job) (o outcome, err error) {
	n := j.n
	err = bgworker.Transaction(func() error {
		for i := int64(1); i <= n; i++ {
			k, err := spi.Exec(insertSQL, i, "x")
			if err != nil {
				return err
			}
			o.checksum += k
		}
		return nil
	})
	o.rows = n
	return o, err
}

// insertPrepared prepares the INSERT once and runs it n times with bound
// parameters, in one transaction.
func insertPrepared(j job) (o outcome, err error) {
	err = bgworker.Transaction(func() error {
		stmt, err := spi.Prepare(insertSQL)
		if err != nil {
			return notYet("spi.Prepare", err)
		}
		defer stmt.Close()
		for i := int64(1); i <= j.n; i++ {
			k, err := stmt.Exec(i, "x")
			if err != nil {
				return notYet("spi.Stmt.Exec", err)
			}
			o.checksum += k
		}
		return nil
	})
	o.rows = j.n
	return o, err
}

// insertTx runs n single-row INSERTs, each in its own transaction.
func insertTx(j job) (o outcome, err error) {
	for i := int64(1); i <= j.n; i++ {
		err := bgworker.Transaction(func() error {
			k, err := spi.Exec(insertSQL, i, "x")
			o.checksum += k
			return err
		})
		if err != nil {
			return o, err
		}
	}
	o.rows = j.n
	return o, nil
}

// read reads every row of bench_read_<n> into Go values: int64, string,
// time.Time and the numeric as its text (string).
func read(j job) (o outcome, err error) {
	err = bgworker.Transaction(func() error {
		rows, err := spi.Query("SELECT id, t, ts, n FROM bench_read_" + strconv.FormatInt(j.n, 10))
		if err != nil {
			return err
		}
		defer rows.Close()
		var (
			id  int64
			t   string
			ts  time.Time
			num string
		)
		for rows.Next() {
			if err := rows.Scan(&id, &t, &ts, &num); err != nil {
				return err
			}
			o.checksum += id + int64(len(t)) + int64(len(num)) + ts.Unix()%1000
			o.rows++
		}
		return rows.Err()
	})
	return o, err
}

// launch starts n dynamic workers one after the other, each once the
// previous one has exited. The clock is read just before LoadDynamic; each
// worker stores when its first line ran (launchedMain), and the harness
// takes the differences from bench_launch.
func launch(j job) (o outcome, err error) {
	starts := make([]int64, j.n)
	extra := fmt.Sprintf("%d %d", bgworker.DatabaseOID(), j.id)
	for i := range starts {
		b := bgworker.New(fmt.Sprintf("pggo bench launched %d", i)).
			SetType("pggo_bench_launched").
			SetLibrary("gobench").
			SetFunction("gobench_launched").
			EnableSPIAccess().
			SetArgument(pggo.Int64Datum(int64(i))).
			SetExtra(extra).
			SetNotifyPID(os.Getpid())
		starts[i] = time.Now().UnixNano()
		w, err := b.LoadDynamic()
		if err != nil {
			return o, notYet("bgworker.LoadDynamic", err)
		}
		if err := w.WaitForShutdown(); err != nil {
			return o, err
		}
	}
	err = bgworker.Transaction(func() error {
		for i, start := range starts {
			k, err := spi.Exec("UPDATE bench_launch SET start_ns = $1 WHERE job = $2 AND seq = $3", start, j.id, int64(i))
			if err != nil {
				return err
			}
			if k != 1 {
				return fmt.Errorf("launched worker %d did not record its first line", i)
			}
			o.rows++
		}
		return nil
	})
	return o, err
}

// launchedMain is a dynamically launched worker: it notes when its first
// line ran, records it and exits with code 0.
func launchedMain(arg pggo.Datum) error {
	first := time.Now().UnixNano()
	var db pggo.Oid
	var jobID int64
	if _, err := fmt.Sscanf(bgworker.Extra(), "%d %d", &db, &jobID); err != nil {
		return fmt.Errorf("bgw_extra %q: %w", bgworker.Extra(), err)
	}
	if err := bgworker.ConnectWorkerToSPIByOID(db, 0); err != nil {
		return err
	}
	return bgworker.Transaction(func() error {
		_, err := spi.Exec("INSERT INTO bench_launch(contender, job, seq, first_ns) VALUES ('go', $1, $2, $3)",
			jobID, arg.Int64(), first)
		return err
	})
}

// resetPeak restarts VmHWM from the current VmRSS, so that the VmHWM read
// after a job is that job's peak.
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// cpuTime is the CPU time of the whole process (all threads, so the Go
// runtime's too), user + system, in nanoseconds, as the C worker measures it.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// readMemory returns VmRSS, VmHWM and RssAnon of this process in kB (-1 if
// unknown).
func readMemory() (rss, hwm, anon int64) {
	rss, hwm, anon = -1, -1, -1
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return rss, hwm, anon
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		switch string(f[0]) {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		case "RssAnon:":
			anon = v
		}
	}
	return rss, hwm, anon
}

func main() {}

// doRoundTrip: one goroutine hands n empty functions to the worker's thread
// with bgworker.Do, one after the other, while the MainFunc serves.
func doRoundTrip(j job) (o outcome, err error) {
	ctx, done := context.WithCancel(bgworker.Context())
	var n int64
	var doErr error
	bgworker.Go(func() {
		defer done()
		for i := int64(0); i < j.n; i++ {
			if doErr = bgworker.Do(ctx, func() error { n++; return nil }); doErr != nil {
				return
			}
		}
	})
	if err := bgworker.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return o, err
	}
	o.rows, o.checksum = n, n
	return o, doErr
}

// queueReceive launches a dynamic worker (queueSender) that sends j.n
// messages of size bytes through one 64 kB queue, and receives them here,
// checking each one's length and sequence number.
func queueReceive(size int) func(j job) (outcome, error) {
	return func(j job) (o outcome, err error) {
		q, err := shmem.CreateQueue(65536, shmem.Receiver)
		if err != nil {
			return o, notYet("shmem.CreateQueue", err)
		}
		defer q.Close()
		w, err := bgworker.New("pggo bench queue sender").SetType("pggo_bench_queue").
			SetLibrary("gobench").SetFunction("gobench_queue_sender").EnableShmemAccess().
			SetArgument(q.Handle().Datum()).SetExtra(fmt.Sprintf("%d %d", j.n, size)).
			SetNotifyPID(os.Getpid()).LoadDynamic()
		if err != nil {
			return o, err
		}
		if err := q.SetWorker(w); err != nil {
			return o, err
		}
		for i := int64(0); i < j.n; i++ {
			msg, err := q.Receive()
			if err != nil {
				return o, fmt.Errorf("message %d: %w", i, err)
			}
			if len(msg) != size || int64(binary.LittleEndian.Uint64(msg)) != i {
				return o, fmt.Errorf("message %d: %d bytes, sequence %d", i, len(msg), binary.LittleEndian.Uint64(msg))
			}
			o.rows++
			o.checksum++
		}
		if _, err := q.Receive(); !errors.Is(err, shmem.ErrDetached) {
			return o, fmt.Errorf("after the last message: %v, want shmem.ErrDetached", err)
		}
		return o, w.WaitForShutdown()
	}
}

// queueSender sends what its extra says ("n size") through the queue in
// its argument, message i starting with i (8 bytes, little-endian).
func queueSender(arg pggo.Datum) error {
	var n int64
	var size int
	if _, err := fmt.Sscanf(bgworker.Extra(), "%d %d", &n, &size); err != nil {
		return fmt.Errorf("bgw_extra %q: %w", bgworker.Extra(), err)
	}
	q, err := shmem.AttachQueue(shmem.HandleFromDatum(arg), shmem.Sender)
	if err != nil {
		return err
	}
	defer q.Close()
	msg := make([]byte, max(size, 8))
	for i := int64(0); i < n; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		if err := q.Send(msg); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

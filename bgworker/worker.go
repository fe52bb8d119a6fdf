package bgworker

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
)

// SignalWakeFlags choose the signals that wake [WaitLatch] (bit flags).
type SignalWakeFlags int

const (
	// SIGHUP: a configuration reload (pg_reload_conf) wakes the worker;
	// [SighupReceived] reports it. The new configuration is loaded by the
	// next WaitLatch either way.
	SIGHUP SignalWakeFlags = SignalWakeFlags(pg.WakeSIGHUP)
	// SIGTERM: a termination request (pg_terminate_backend, server shutdown)
	// wakes the worker, WaitLatch returns false and the worker returns in its
	// own time. Without it, SIGTERM behaves as PostgreSQL's die(): the worker
	// exits with FATAL (exit code 1) at its next WaitLatch or statement.
	SIGTERM SignalWakeFlags = SignalWakeFlags(pg.WakeSIGTERM)
)

// The running worker, set before its MainFunc starts.
var (
	self           pg.Spec
	connected      bool
	postmasterGone bool
)

func init() {
	pg.RunWorker = runWorker
	// Package shmem ties a message queue to its peer worker's handle.
	pg.WorkerHandleOf = func(v any) *pg.Handle {
		if w, ok := v.(*DynamicWorker); ok && w != nil {
			return w.handle
		}
		return nil
	}
}

func runWorker(function string, arg uintptr) (err error) {
	fn, err := lookupFunction(function)
	if err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("no MainFunc is registered as %q (bgworker.RegisterFunction)", function)
	}
	if self, err = pg.Info(); err != nil {
		return err
	}
	startRuntime()
	defer func() {
		stopRuntime()
		if r := recover(); r != nil {
			if a, ok := r.(pg.Abort); ok {
				err = a.Err
				return
			}
			err = &pg.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return fn(pggo.Datum(arg))
}

// checkDeferred ends the worker if a goroutine recorded a failure.
func checkDeferred() {
	if err := pg.Failed(); err != nil {
		panic(pg.Abort{Err: err})
	}
}

// Name is the running worker's name (bgw_name).
func Name() string { return self.Name }

// Type is the running worker's type (bgw_type).
func Type() string { return self.Type }

// Extra is the running worker's extra data (bgw_extra), as set with SetExtra.
func Extra() string { return self.Extra }

// SighupReceived reports whether SIGHUP arrived since the last call, and
// clears the flag.
func SighupReceived() bool { return pg.TakeSighup() }

// SigtermReceived reports whether SIGTERM arrived since the last call, and
// clears the flag. [WaitLatch] and [WorkerContinue] keep returning false after
// a SIGTERM regardless.
func SigtermReceived() bool { return pg.TakeSigterm() }

// AttachSignalHandlers chooses which signals wake [WaitLatch]; see
// [SIGHUP] and [SIGTERM]. Call it first thing in a MainFunc; most workers want
// AttachSignalHandlers(SIGHUP | SIGTERM).
func AttachSignalHandlers(wake SignalWakeFlags) { pg.AttachSignals(int(wake)) }

// WaitLatch sleeps until the worker's latch is set (SetLatch from another
// process, a signal chosen with AttachSignalHandlers), the timeout passes
// (negative: no timeout), or the postmaster dies; then it resets the latch,
// processes interrupts and reloads the configuration if SIGHUP arrived.
//
// It returns false once the worker must stop: SIGTERM arrived or the
// postmaster died. Call it again after the postmaster died and the process
// exits at once (code 1). It also ends the worker (ERROR, exit code 1) if a
// goroutine started with [Go] panicked.
//
// Called from a goroutine other than the worker's, it returns false at once
// and the worker ends with pggo.ErrWrongThread at its next wait.
func WaitLatch(timeout time.Duration) bool {
	ms := int64(-1)
	if timeout >= 0 {
		ms = int64((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	if !pg.OnWorkerThread() {
		pg.Fail(fmt.Errorf("bgworker.WaitLatch called from another goroutine: %w", pggo.ErrWrongThread))
		return false
	}
	if postmasterGone {
		pg.ProcExit(1)
	}
	var deadline time.Time
	if ms >= 0 {
		deadline = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	for {
		ev := waitOnce(ms)
		if ev&pg.EventPostmasterDeath != 0 {
			postmasterGone = true
			return false
		}
		// Work queued by goroutines (Do, logs) was served: that is not a
		// wake-up of the worker's own, so wait on for the rest of the time.
		if ev&pg.EventWork == 0 || ev&(pg.EventLatch|pg.EventTimeout) != 0 || pg.SigtermSeen() {
			break
		}
		if ms >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			ms = int64((left + time.Millisecond - 1) / time.Millisecond)
		}
	}
	return !pg.SigtermSeen()
}

// waitOnce is one wait on the latch, with the work goroutines queued served
// before and after it.
func waitOnce(ms int64) int {
	serveWork()
	checkDeferred()
	ev, err := pg.WaitLatch(ms)
	if err != nil {
		// A query cancel (pg_cancel_backend) or a failed reload lands here:
		// log it and keep the worker alive, as a backend would.
		pg.Log(pg.LogWarning, fmt.Sprintf("bgworker.WaitLatch: %v", err))
	}
	refreshLogLevel()
	serveWork()
	checkDeferred()
	return ev
}

// SetWaitEvent names the wait event the worker's WaitLatch (and Serve)
// reports in pg_stat_activity.wait_event, e.g. "worker_spi_main": a custom
// wait event of PostgreSQL 17 and later (listed in pg_wait_events). Before
// 17, waits report the Extension class's "Extension" and the name is only
// checked (1 to 63 bytes). Call it on the worker's goroutine.
func SetWaitEvent(name string) error { return pg.SetWaitEvent(name) }

// WorkerContinue reports whether the worker may go on: false after SIGTERM,
// after the postmaster died, or after a goroutine started with [Go] panicked.
func WorkerContinue() bool {
	if !pg.OnWorkerThread() {
		pg.Fail(fmt.Errorf("bgworker.WorkerContinue called from another goroutine: %w", pggo.ErrWrongThread))
		return false
	}
	if pg.SigtermSeen() || postmasterGone || pg.Failed() != nil {
		return false
	}
	alive, err := pg.PostmasterAlive()
	return err == nil && alive
}

// ConnectWorkerToSPI connects the worker to database dbname as role username,
// so it can run [Transaction]. "" means not given: no username is the
// bootstrap superuser; no dbname connects to no database at all (only shared
// catalogs are readable), as in PostgreSQL. Call it once. The worker
// must have been registered with EnableSPIAccess. A database or role that
// does not exist ends the worker with FATAL (exit code 1), as in C. flags
// are PostgreSQL's connection bypasses ([BypassAllowConn],
// [BypassRoleLoginCheck]).
func ConnectWorkerToSPI(dbname, username string, flags ...ConnectFlag) error {
	if err := canConnect(); err != nil {
		return err
	}
	if err := pg.Connect(dbname, username, connectFlags(flags)); err != nil {
		return err
	}
	connected = true
	return nil
}

// DatabaseOID is the OID of the database this process is connected to (0
// before ConnectWorkerToSPI). In a SQL function it is the session's database:
// pass it to a dynamic worker (SetArgument or SetExtra) so that it connects
// to the same one with ConnectWorkerToSPIByOID, as worker_spi does.
func DatabaseOID() pggo.Oid { return pggo.Oid(pg.MyDatabaseID()) }

// UserOID is the current role (GetUserId). In a SQL function it is the
// caller's: pass it with DatabaseOID to a worker that must act as the
// caller (ConnectWorkerToSPIByOID), as pg_background does.
func UserOID() pggo.Oid { return pggo.Oid(pg.MyUserID()) }

// ConnectWorkerToSPIByOID is ConnectWorkerToSPI with the database's and the
// role's OIDs (0 for the role: the bootstrap superuser).
func ConnectWorkerToSPIByOID(db, user pggo.Oid, flags ...ConnectFlag) error {
	if err := canConnect(); err != nil {
		return err
	}
	if err := pg.ConnectByOID(uint32(db), uint32(user), connectFlags(flags)); err != nil {
		return err
	}
	connected = true
	return nil
}

// ConnectFlag is one of PostgreSQL's bypasses for a worker's connection
// (the flags of BackgroundWorkerInitializeConnection).
type ConnectFlag int

const (
	// BypassAllowConn connects even to a database with datallowconn =
	// false (BGWORKER_BYPASS_ALLOWCONN).
	BypassAllowConn ConnectFlag = ConnectFlag(pg.ConnectBypassAllowConn)
	// BypassRoleLoginCheck connects as a role without LOGIN
	// (BGWORKER_BYPASS_ROLELOGINCHECK, PostgreSQL 17 and later; on 15 the
	// connection fails with SQLSTATE 0A000).
	BypassRoleLoginCheck ConnectFlag = ConnectFlag(pg.ConnectBypassRoleLoginCheck)
)

func connectFlags(flags []ConnectFlag) int {
	n := 0
	for _, f := range flags {
		n |= int(f)
	}
	return n
}

func canConnect() error {
	if !pg.Available() {
		return pg.ErrNotInPostgres
	}
	if self.Flags&pg.FlagDatabaseConnection == 0 {
		return fmt.Errorf("bgworker: worker %q was registered without EnableSPIAccess, so it cannot connect to a database", self.Name)
	}
	if connected {
		return errors.New("bgworker: the worker is already connected to a database (connect once)")
	}
	return nil
}

// Transaction runs fn in a transaction with SPI connected and a snapshot
// taken, as PostgreSQL's worker_spi does. It commits if fn returns nil. If fn
// returns an error or panics, or a statement inside failed, the transaction is
// rolled back and the error (a panic as an error with its stack) is returned;
// the worker can go on with its next transaction.
func Transaction(fn func() error) (err error) {
	// Without a database connection PostgreSQL has no transaction machinery
	// set up in this process; refuse rather than let it crash.
	if pg.Available() && !connected {
		return errors.New("bgworker: Transaction needs a database connection: call ConnectWorkerToSPI first")
	}
	if err := pg.TxBegin(); err != nil {
		return err
	}
	fnErr := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				if a, ok := r.(pg.Abort); ok {
					pg.TxRollback()
					panic(a)
				}
				err = &pg.PanicError{Value: r, Stack: debug.Stack()}
			}
		}()
		return fn()
	}()
	if fnErr != nil {
		pg.TxRollback()
		return fnErr
	}
	if err := pg.TxCommit(); err != nil {
		// A refused commit (a savepoint left open) must not leave the
		// transaction open for the next Transaction.
		pg.TxRollback()
		return err
	}
	return nil
}

// Go runs fn in a new goroutine. If fn panics, the panic is recovered and the
// worker ends at its next WaitLatch (or when its MainFunc returns) with an
// ERROR naming the panic, exit code 1, instead of the process aborting and
// PostgreSQL restarting the cluster. fn must not call PostgreSQL (it would
// get pggo.ErrWrongThread): send results to the worker's goroutine instead.
func Go(fn func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				pg.Fail(&pg.PanicError{Value: r, Stack: debug.Stack()})
			}
		}()
		fn()
	}()
}

// Wake sets the worker's latch, so that its WaitLatch returns. Unlike the
// rest of this package it is safe from any goroutine: a goroutine started
// with Go hands a result over a channel, then calls Wake.
func Wake() { pg.SetMyLatch() }

// ReportActivity shows what the worker does in pg_stat_activity: state
// "active" with query as its query text, or "idle" when query is "".
func ReportActivity(query string) error {
	return pg.ReportActivity(query != "", query)
}

// Log writes a message to the server log at level LOG.
func Log(msg string) error { return pg.Log(pg.LogLog, msg) }

// Logf formats a message and writes it to the server log at level LOG.
func Logf(format string, args ...any) error { return Log(fmt.Sprintf(format, args...)) }

// Warning writes a message to the server log at level WARNING.
func Warning(msg string) error { return pg.Log(pg.LogWarning, msg) }

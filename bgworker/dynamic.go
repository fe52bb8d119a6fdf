package bgworker

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
)

// Status is the state of a dynamic worker as PostgreSQL reports it
// (BgwHandleStatus), plus Untracked.
type Status int

const (
	// Started: the worker is running; its pid is known.
	Started Status = iota
	// NotYetStarted: registered, the postmaster has not started it yet.
	NotYetStarted
	// Stopped: the worker ran and exited (or was never started and gave up).
	Stopped
	// PostmasterDied: the postmaster is gone; the worker will never start.
	PostmasterDied
	// Untracked: the worker was registered with a notify pid other than the
	// caller's, so the caller is not told when it starts or stops.
	Untracked
)

func (s Status) String() string {
	switch s {
	case Started:
		return "Started"
	case NotYetStarted:
		return "NotYetStarted"
	case Stopped:
		return "Stopped"
	case PostmasterDied:
		return "PostmasterDied"
	case Untracked:
		return "Untracked"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// StatusError is returned when a dynamic worker is not in the state a call
// needs; NotifyPID is set for Untracked.
type StatusError struct {
	Status    Status
	NotifyPID int
}

func (e *StatusError) Error() string {
	if e.Status == Untracked {
		return fmt.Sprintf("bgworker: the worker is untracked: its notify pid is %d, not this process", e.NotifyPID)
	}
	return "bgworker: the worker is " + e.Status.String()
}

// DynamicWorker is a worker registered at run time with LoadDynamic. Its
// methods run PostgreSQL's GetBackgroundWorkerPid, Wait... and
// TerminateBackgroundWorker; call them from the goroutine that may call
// PostgreSQL (the worker's or the SQL function's).
type DynamicWorker struct {
	handle    *pg.Handle
	notifyPID int
}

// TerminatingWorker is a dynamic worker asked to stop; only its shutdown can
// be waited for.
type TerminatingWorker struct {
	w *DynamicWorker
}

// ErrNoSlot is what LoadDynamic's error matches, with errors.Is, when every
// max_worker_processes slot is taken (RegisterDynamicBackgroundWorker
// returned false). The error itself is a *pggo.Error with SQLSTATE 53400
// and a hint; nothing was registered. Code that treats a full server as a
// normal outcome, like worker_spi_launch returning NULL, tests for it:
//
//	if errors.Is(err, bgworker.ErrNoSlot) { return nil, nil }
var ErrNoSlot = errors.New("bgworker: no free background worker slot")

// noSlotError is the *pggo.Error of a full server that also matches ErrNoSlot.
type noSlotError struct{ err *pggo.Error }

func (e *noSlotError) Error() string        { return e.err.Error() }
func (e *noSlotError) Unwrap() error        { return e.err }
func (e *noSlotError) Is(target error) bool { return target == ErrNoSlot }

// LoadDynamic registers the worker and asks the postmaster to start it now.
// It works in a background worker and in an ordinary backend (a SQL function
// registered with package fmgr). The builder is checked as for Load; when
// every max_worker_processes slot is taken, the error matches [ErrNoSlot]
// (a *pggo.Error with SQLSTATE 53400) and nothing is registered.
//
// To wait for the worker with WaitForStartup or WaitForShutdown, set the
// notify pid to the caller's: SetNotifyPID(os.Getpid()). Pass data by value
// (SetArgument) or in up to 127 bytes of SetExtra: a pointer is meaningless
// in another process. worker_spi's pattern is to pass an OID (a database,
// a role, a table) as the argument or as text in extra.
func (b *Builder) LoadDynamic() (*DynamicWorker, error) {
	if pg.Collecting() {
		// The init helper is a copy of the postmaster before it runs:
		// PostgreSQL can only register static workers there.
		return nil, fmt.Errorf("bgworker: LoadDynamic cannot be used in OnInit (worker %q): register static workers there with Load; LoadDynamic works in a running worker or a SQL function", b.name)
	}
	spec, err := b.spec()
	if err != nil {
		return nil, err
	}
	h, noSlot, err := pg.RegisterDynamic(spec)
	if err != nil {
		var pgErr *pggo.Error
		if noSlot && errors.As(err, &pgErr) {
			return nil, &noSlotError{err: pgErr}
		}
		return nil, err
	}
	w := &DynamicWorker{handle: h, notifyPID: spec.NotifyPID}
	// The handle is malloc'd C memory; free() is safe on the finalizer's thread.
	runtime.SetFinalizer(w, func(w *DynamicWorker) { w.handle.Free() })
	return w, nil
}

func (w *DynamicWorker) op(op int) (int, Status, error) {
	pid, status, err := pg.HandleOp(w.handle, op)
	runtime.KeepAlive(w)
	return pid, Status(status), err
}

// tracked returns *StatusError{Untracked} unless this process is the
// worker's notify pid: only that process hears when it starts or stops.
func (w *DynamicWorker) tracked() error {
	if w.notifyPID != pg.MyProcPID() {
		return &StatusError{Status: Untracked, NotifyPID: w.notifyPID}
	}
	return nil
}

// PID returns the worker's pid if it runs, else a *StatusError with its state.
func (w *DynamicWorker) PID() (int, error) {
	pid, st, err := w.op(pg.BgwGetPID)
	if err != nil {
		return 0, err
	}
	if st != Started {
		return 0, &StatusError{Status: st}
	}
	return pid, nil
}

// Terminate asks the postmaster to stop the worker: SIGTERM if it runs, and
// it is not started (again) if it does not. Wait with WaitForShutdown.
func (w *DynamicWorker) Terminate() *TerminatingWorker {
	w.op(pg.BgwTerminate)
	return &TerminatingWorker{w: w}
}

// WaitForStartup waits until the postmaster has started the worker and
// returns its pid, or a *StatusError (Stopped if it could not start,
// PostmasterDied, or Untracked if this process is not its notify pid).
//
// It is PostgreSQL's WaitForBackgroundWorkerStartup: it returns once the
// postmaster has forked the worker's process and recorded its pid
// (BGWH_STARTED). That is all it promises. The worker has not necessarily
// run any Go code yet, may still fail and exit, and is not yet visible in
// pg_stat_activity: a worker appears there only once it connects to a
// database (ConnectWorkerToSPI), and one that never connects never does.
// To wait until the worker is ready, have it say so (a row it writes, a
// latch it sets) or poll pg_stat_activity for the returned pid.
func (w *DynamicWorker) WaitForStartup() (int, error) {
	if err := w.tracked(); err != nil {
		return 0, err
	}
	pid, st, err := w.op(pg.BgwWaitStartup)
	if err != nil {
		return 0, err
	}
	if st != Started {
		return 0, &StatusError{Status: st}
	}
	return pid, nil
}

// WaitForShutdown waits until the worker has exited; *StatusError with
// PostmasterDied or Untracked otherwise.
func (w *DynamicWorker) WaitForShutdown() error {
	if err := w.tracked(); err != nil {
		return err
	}
	_, st, err := w.op(pg.BgwWaitShutdown)
	if err != nil {
		return err
	}
	if st != Stopped {
		return &StatusError{Status: st}
	}
	return nil
}

// WaitForShutdown waits until the terminated worker has exited.
func (t *TerminatingWorker) WaitForShutdown() error { return t.w.WaitForShutdown() }

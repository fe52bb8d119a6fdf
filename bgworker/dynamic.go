package bgworker

import (
	"errors"
	"fmt"
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

// ErrDynamicUnsupported is returned by LoadDynamic until dynamic workers are
// implemented (issue "Dynamic background workers").
var ErrDynamicUnsupported = errors.New("bgworker: dynamic workers are not implemented yet")

// DynamicWorker is a worker registered at run time with LoadDynamic.
type DynamicWorker struct {
	notifyPID int
}

// TerminatingWorker is a dynamic worker asked to stop; only its shutdown can
// be waited for.
type TerminatingWorker struct {
	w *DynamicWorker
}

// LoadDynamic registers and starts the worker now, from a backend or another
// worker. Not implemented yet: it returns ErrDynamicUnsupported.
func (b *Builder) LoadDynamic() (*DynamicWorker, error) {
	return nil, ErrDynamicUnsupported
}

// PID returns the worker's pid if it runs, else a *StatusError.
func (w *DynamicWorker) PID() (int, error) { return 0, ErrDynamicUnsupported }

// Terminate asks the postmaster to stop the worker (SIGTERM if running).
func (w *DynamicWorker) Terminate() *TerminatingWorker { return &TerminatingWorker{w: w} }

// WaitForStartup waits until the worker has started and returns its pid.
func (w *DynamicWorker) WaitForStartup() (int, error) { return 0, ErrDynamicUnsupported }

// WaitForShutdown waits until the worker has exited.
func (w *DynamicWorker) WaitForShutdown() error { return ErrDynamicUnsupported }

// WaitForShutdown waits until the terminated worker has exited.
func (t *TerminatingWorker) WaitForShutdown() error { return ErrDynamicUnsupported }

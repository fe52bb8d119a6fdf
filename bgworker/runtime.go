package bgworker

import (
	"context"
	"errors"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
)

// The Go-native runtime of a worker: a context that ends with the worker,
// and Do, which hands work from any goroutine to the worker's thread, the
// only one that may call PostgreSQL. The pattern: fan I/O out to goroutines
// (HTTP, Kafka, S3), funnel SQL through Do.

// Why the worker's context ended (context.Cause).
var (
	// ErrTerminated: SIGTERM arrived (pg_terminate_backend, a server
	// shutdown), whether or not the worker attached SIGTERM.
	ErrTerminated = errors.New("bgworker: the worker was asked to terminate (SIGTERM)")
	// ErrPostmasterDied: the postmaster is gone; the worker must exit.
	ErrPostmasterDied = errors.New("bgworker: the postmaster died")
	// ErrReturned: the worker's MainFunc returned.
	ErrReturned = errors.New("bgworker: the worker's MainFunc returned")
)

// ErrShutdown is returned by [Do] once the worker's context has ended: the
// work was not run, and will not be.
var ErrShutdown = errors.New("bgworker: the worker has stopped; the work was not run")

var (
	workerCtx                            = context.Background()
	cancelWorker context.CancelCauseFunc = func(error) {}

	workMu    sync.Mutex
	workQueue []*doRequest
	stopped   atomic.Bool
)

// Context returns the worker's context: cancelled when SIGTERM arrives
// (whether or not AttachSignalHandlers took SIGTERM over), when the
// postmaster dies, and when the MainFunc returns; context.Cause tells which
// ([ErrTerminated], [ErrPostmasterDied], [ErrReturned]). Give it to HTTP
// clients, timers and goroutines, so that they stop with the worker. It is
// safe from any goroutine. Outside a worker it is context.Background().
func Context() context.Context { return workerCtx }

// startRuntime sets up the context and its watchers; on the worker's thread,
// before the MainFunc.
func startRuntime() {
	workerCtx, cancelWorker = context.WithCancelCause(context.Background())
	// SIGTERM: the loader's handler writes a byte into this pipe.
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err == nil {
		r := os.NewFile(uintptr(fds[0]), "pggo sigterm")
		pg.SetNotifyFD(fds[1])
		go func() {
			var b [1]byte
			if n, _ := r.Read(b[:]); n == 1 {
				shutdown(ErrTerminated)
			}
		}()
	}
	// Postmaster death: its pipe reaches end of file. Read a duplicate, so
	// that Go's poller never changes PostgreSQL's own descriptor.
	if fd := pg.PostmasterDeathFD(); fd >= 0 {
		if dup, err := syscall.Dup(fd); err == nil {
			syscall.CloseOnExec(dup)
			f := os.NewFile(uintptr(dup), "pggo postmaster death")
			go func() {
				var b [1]byte
				for {
					if _, err := f.Read(b[:]); err != nil {
						shutdown(ErrPostmasterDied)
						return
					}
				}
			}()
		}
	}
}

// shutdown ends the worker's context and refuses new work. Any goroutine.
func shutdown(cause error) {
	stopped.Store(true)
	cancelWorker(cause)
	// A worker blocked in WaitLatch serves what is queued, then sees it.
	pg.NotifyWork()
}

// stopRuntime runs when the MainFunc returned: what was queued and not run
// gets ErrShutdown, and log records still queued are written.
func stopRuntime() {
	shutdown(ErrReturned)
	workMu.Lock()
	q := workQueue
	workQueue = nil
	workMu.Unlock()
	for _, r := range q {
		if r.state.CompareAndSwap(pending, cancelled) {
			r.done <- ErrShutdown
		}
	}
	flushLogs()
}

const (
	pending int32 = iota
	running
	cancelled
)

type doRequest struct {
	fn    func() error
	state atomic.Int32
	done  chan error
}

// Do runs fn on the worker's thread, where it may use [Transaction] and
// package spi, and returns fn's error (a panic in fn as an error with its
// stack). Any goroutine may call it. The worker runs it while it waits: in
// [WaitLatch], or [Serve]; a submission wakes the worker at once and is not
// lost when a statement the worker runs consumes its latch. Called on the
// worker's own goroutine, Do runs fn at once.
//
// If ctx ends before fn started, Do returns ctx's error and fn never runs;
// once fn started, Do waits for it. Once the worker's [Context] has ended
// (SIGTERM, postmaster death, MainFunc returned), Do returns [ErrShutdown]
// at once. fn runs where the worker waits: if it waits inside a
// Transaction, fn runs inside that transaction.
func Do(ctx context.Context, fn func() error) error {
	if !pg.Available() {
		return pg.ErrNotInPostgres
	}
	if pg.OnWorkerThread() {
		return runWork(fn)
	}
	// The SIGTERM flag is set by the handler itself: seen before the
	// watcher goroutine has run, so a worker that stopped serving right
	// after SIGTERM never leaves Do waiting.
	if pg.SigtermSeen() {
		shutdown(ErrTerminated)
	}
	if stopped.Load() {
		return ErrShutdown
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &doRequest{fn: fn, done: make(chan error, 1)}
	workMu.Lock()
	if stopped.Load() {
		workMu.Unlock()
		return ErrShutdown
	}
	workQueue = append(workQueue, r)
	workMu.Unlock()
	pg.NotifyWork()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(pending, cancelled) {
			return ctx.Err()
		}
		return <-r.done // already running: its result
	}
}

// Serve runs the work other goroutines hand over with [Do] until ctx ends
// (it returns ctx's error) or the worker must stop: SIGTERM or postmaster
// death (it returns nil). For workers whose goroutines do everything and
// whose MainFunc only serves.
func Serve(ctx context.Context) error {
	if !pg.OnWorkerThread() {
		return pggo.ErrWrongThread
	}
	stop := context.AfterFunc(ctx, pg.NotifyWork)
	defer stop()
	for ctx.Err() == nil {
		if postmasterGone || pg.SigtermSeen() || pg.Failed() != nil {
			break
		}
		ev := waitOnce(-1)
		if ev&pg.EventPostmasterDeath != 0 {
			postmasterGone = true
			return nil
		}
	}
	serveWork()
	checkDeferred()
	if err := ctx.Err(); err != nil && !pg.SigtermSeen() {
		return err
	}
	return nil
}

// serveWork runs the queued work and writes queued log records, in order;
// on the worker's thread.
func serveWork() {
	flushLogs()
	for {
		workMu.Lock()
		q := workQueue
		workQueue = nil
		workMu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, r := range q {
			if r.state.CompareAndSwap(pending, running) {
				r.done <- runWork(r.fn)
			}
		}
		flushLogs()
	}
}

// runWork runs fn, returning a panic as an error; a deferred failure of the
// worker (pg.Abort) goes on up to end the worker.
func runWork(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if a, ok := r.(pg.Abort); ok {
				panic(a)
			}
			err = &pg.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return fn()
}

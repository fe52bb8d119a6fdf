// Package bgworker registers PostgreSQL background workers written in Go and
// gives a running worker what it needs: its identity, its latch, signals,
// a database connection and transactions.
//
// The two roles never mix, as in pgx: a [Builder] describes a worker to
// register (at server start from pggo.OnInit with [Builder.Load], or at run
// time with [Builder.LoadDynamic]); the package-level functions ([WaitLatch],
// [Transaction], ...) are for the code running inside a worker.
//
// See it working: examples/worker_spi, and `make demo` at the repository's top.
//
// # Threads
//
// A worker's [MainFunc] runs on the process's main thread, the only thread
// allowed to call PostgreSQL. Every call made from another goroutine returns
// [pggo.ErrWrongThread] (or, for [WaitLatch] and [WorkerContinue], which
// return bool, ends the worker with that error) without touching PostgreSQL.
// Start goroutines with [Go]: a panic in one ends the worker with an ERROR and
// exit code 1. A panic in a goroutine started with a plain go statement
// aborts the process, and PostgreSQL then restarts the whole cluster, as it
// would for a segfault in C: that is the extension author's responsibility.
//
// Goroutines should not spin without function calls: pggo builds extensions
// with asynchronous preemption off (it would steal PostgreSQL's latch
// signal), so a call-free loop can stall the garbage collector.
package bgworker

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
)

// StartTime says when the postmaster starts a worker (bgw_start_time).
type StartTime int

const (
	// PostmasterStart starts the worker as soon as the postmaster has
	// finished its own initialization, before recovery. Such a worker cannot
	// connect to a database.
	PostmasterStart StartTime = StartTime(pg.StartPostmaster)
	// ConsistentState starts the worker once a hot standby accepts read-only
	// connections (or, on a primary, when it is ready).
	ConsistentState StartTime = StartTime(pg.StartConsistent)
	// RecoveryFinished starts the worker once the system is in normal
	// read-write operation. Workers using SPI should start here.
	RecoveryFinished StartTime = StartTime(pg.StartRecoveryFinished)
)

func (s StartTime) String() string {
	switch s {
	case PostmasterStart:
		return "PostmasterStart"
	case ConsistentState:
		return "ConsistentState"
	case RecoveryFinished:
		return "RecoveryFinished"
	}
	return fmt.Sprintf("StartTime(%d)", int(s))
}

// NeverRestart is the default restart time: a worker that exits with code 1
// (a returned error or a panic) is not started again (BGW_NEVER_RESTART).
const NeverRestart time.Duration = -1

// MainFunc is a worker's main function. Returning nil ends the worker with
// exit code 0: PostgreSQL unregisters it. Returning an error (or panicking)
// logs an ERROR and exits with code 1: PostgreSQL restarts the worker after
// its restart time, unless that is NeverRestart.
type MainFunc func(arg pggo.Datum) error

var (
	funcsMu sync.Mutex
	funcs   = map[string]MainFunc{}
	funcErr error
)

// RegisterFunction makes name usable with [Builder.SetFunction]. Call it from
// an init function of the extension's main package with a string literal:
// `pggo build` reads those literals to export a C entry point of that name
// from the preloaded library, which is what PostgreSQL looks up.
func RegisterFunction(name string, fn MainFunc) {
	funcsMu.Lock()
	defer funcsMu.Unlock()
	switch {
	case fn == nil:
		if funcErr == nil {
			funcErr = fmt.Errorf("bgworker.RegisterFunction(%q): the function is nil", name)
		}
	case funcs[name] != nil:
		if funcErr == nil {
			funcErr = fmt.Errorf("bgworker.RegisterFunction(%q): registered twice", name)
		}
	default:
		funcs[name] = fn
	}
}

func lookupFunction(name string) (MainFunc, error) {
	funcsMu.Lock()
	defer funcsMu.Unlock()
	if funcErr != nil {
		return nil, funcErr
	}
	return funcs[name], nil
}

// Builder describes a background worker; its fields are those of
// PostgreSQL's BackgroundWorker struct. Create one with [New], set what
// differs from the defaults, and finish with [Builder.Load] or
// [Builder.LoadDynamic]. Nothing is checked until then; then every field is,
// and nothing is registered if one is wrong.
type Builder struct {
	name        string
	typ         string
	flags       int
	startTime   StartTime
	restartTime time.Duration
	library     string
	function    string
	arg         pggo.Datum
	extra       string
	notifyPID   int
}

// New starts describing a worker called name (bgw_name, shown in
// pg_stat_activity and the log). As in pgx, the type and function default to
// name too; the library defaults to this extension (the only one a pggo
// worker can run), so SetLibrary is optional. The worker starts at
// PostmasterStart, is never restarted, gets argument 0, no extra data and
// notifies no process.
func New(name string) *Builder {
	return &Builder{
		name:        name,
		typ:         name,
		startTime:   PostmasterStart,
		restartTime: NeverRestart,
		function:    name,
	}
}

// SetType sets bgw_type: the worker's kind, shown as backend_type in
// pg_stat_activity. Workers of one kind share it; the name can be unique.
func (b *Builder) SetType(typ string) *Builder { b.typ = typ; return b }

// EnableShmemAccess requests shared memory access (BGWORKER_SHMEM_ACCESS).
func (b *Builder) EnableShmemAccess() *Builder {
	b.flags |= pg.FlagShmemAccess
	return b
}

// EnableSPIAccess requests a database connection (BGWORKER_SHMEM_ACCESS |
// BGWORKER_BACKEND_DATABASE_CONNECTION), needed for ConnectWorkerToSPI, and
// moves the start time to RecoveryFinished: SPI is not usable before
// recovery ends. Call SetStartTime afterwards to choose ConsistentState.
func (b *Builder) EnableSPIAccess() *Builder {
	b.flags |= pg.FlagShmemAccess | pg.FlagDatabaseConnection
	b.startTime = RecoveryFinished
	return b
}

// EnableInterruptible sets BGWORKER_INTERRUPTIBLE (PostgreSQL 19 and
// later): the worker is terminated, as by pg_terminate_backend, when its
// database is dropped, renamed, moved to another tablespace or used as the
// template of CREATE DATABASE, instead of making those commands fail with
// "is being accessed by other users". It needs EnableSPIAccess. On an older
// server Load and LoadDynamic refuse it (a *ValidationError naming the
// field "interruptible"): there DROP DATABASE ... WITH (FORCE) terminates
// the workers connected to that database.
func (b *Builder) EnableInterruptible() *Builder {
	b.flags |= pg.FlagInterruptible
	return b
}

// SetStartTime sets when the postmaster starts the worker (bgw_start_time).
func (b *Builder) SetStartTime(t StartTime) *Builder { b.startTime = t; return b }

// SetRestartTime sets how long the postmaster waits before restarting the
// worker after it exited with code 1 (bgw_restart_time). PostgreSQL counts
// whole seconds, so d must be a whole number of seconds, or NeverRestart.
func (b *Builder) SetRestartTime(d time.Duration) *Builder { b.restartTime = d; return b }

// SetLibrary names the library holding the worker's function
// (bgw_library_name). It is optional: a pggo worker always runs this
// extension, which is the default. Accepted values all name this extension:
// its name as built by `pggo build` (e.g. "example"), that name with ".so"
// or "$libdir/", or the absolute path of its preloaded library. The worker
// is registered with that absolute path either way, so it loads exactly the
// file the server preloaded.
func (b *Builder) SetLibrary(library string) *Builder { b.library = library; return b }

// SetFunction names the worker's main function (bgw_function_name): a name
// passed to RegisterFunction. `pggo build` checks a string literal given
// here against those names and fails on a typo, naming the file and line;
// a computed name is checked when the worker is loaded.
func (b *Builder) SetFunction(function string) *Builder { b.function = function; return b }

// SetArgument sets the Datum passed to the worker's MainFunc (bgw_main_arg).
// Only pass-by-value data works: a pointer is meaningless in the worker's
// process. Use pggo.Int32Datum and friends.
func (b *Builder) SetArgument(arg pggo.Datum) *Builder { b.arg = arg; return b }

// SetExtra sets bgw_extra: up to 127 bytes the worker reads with [Extra].
func (b *Builder) SetExtra(extra string) *Builder { b.extra = extra; return b }

// SetNotifyPID sets bgw_notify_pid: the PostgreSQL process that receives
// SIGUSR1 when the worker starts or stops. 0 for static workers; a dynamic
// worker whose launcher wants to wait for it uses the launcher's pid.
func (b *Builder) SetNotifyPID(pid int) *Builder { b.notifyPID = pid; return b }

// ValidationError reports a worker definition PostgreSQL would reject or
// truncate. Nothing is registered when Load or LoadDynamic returns one.
type ValidationError struct {
	Worker string // bgw_name of the worker
	Field  string // builder field: "name", "type", "library", "function", "extra", "restart time", ...
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("background worker %q: %s: %s", e.Worker, e.Field, e.Reason)
}

// Load registers the worker to start with the server. It works only inside
// a pggo.OnInit hook, at server start with the extension in
// shared_preload_libraries. If it fails, the server does not start, even if
// the hook ignores the error.
func (b *Builder) Load() error {
	if !pg.Collecting() {
		return errors.New("bgworker: Load registers a static worker and works only inside pggo.OnInit " +
			"while the server starts; use LoadDynamic to start a worker at run time")
	}
	spec, err := b.spec()
	if err != nil {
		pg.FailStatic(err)
		return err
	}
	pg.AddStatic(spec)
	return nil
}

// spec validates the builder against the limits of the running server and
// returns what to register.
func (b *Builder) spec() (pg.Spec, error) {
	lim, err := pg.GetLimits()
	if err != nil {
		return pg.Spec{}, err
	}
	return b.validate(lim, pg.LoaderPath(), pg.HasFunction)
}

// validate checks every field against PostgreSQL's limits; loader is this
// extension's preloaded library and exported tells whether it exports a
// function. Split from spec so it can be tested without a server.
func (b *Builder) validate(lim pg.Limits, loader string, exported func(string) error) (pg.Spec, error) {
	bad := func(field, format string, args ...any) (pg.Spec, error) {
		return pg.Spec{}, &ValidationError{Worker: b.name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	for _, f := range []struct {
		field, value string
		max          int
		macro        string
	}{
		{"name", b.name, lim.Name - 1, "BGW_MAXLEN"},
		{"type", b.typ, lim.Name - 1, "BGW_MAXLEN"},
		{"function", b.function, lim.Name - 1, "BGW_MAXLEN"},
		{"extra", b.extra, lim.Extra - 1, "BGW_EXTRALEN"},
	} {
		if strings.IndexByte(f.value, 0) >= 0 {
			return bad(f.field, "contains a NUL byte, which PostgreSQL cannot store")
		}
		// Name and type are shown in pg_stat_activity as text; invalid
		// UTF-8 there breaks queries such as convert_to() on those columns.
		if (f.field == "name" || f.field == "type") && !utf8.ValidString(f.value) {
			i := invalidUTF8At(f.value)
			return bad(f.field, "byte %d (0x%02x) is not valid UTF-8; PostgreSQL shows this field in pg_stat_activity as text", i, f.value[i])
		}
		if len(f.value) > f.max {
			return bad(f.field, "%d bytes is too long: PostgreSQL keeps at most %d bytes (%s-1)", len(f.value), f.max, f.macro)
		}
	}
	if b.name == "" {
		return bad("name", "must not be empty")
	}

	library, err := b.resolveLibrary(lim, loader)
	if err != nil {
		return bad("library", "%v", err)
	}

	if !isCIdentifier(b.function) {
		return bad("function", "%q is not a C identifier, so no library can export it", b.function)
	}
	if fn, err := lookupFunction(b.function); err != nil {
		return bad("function", "%v", err)
	} else if fn == nil {
		return bad("function", "%q is not registered: call bgworker.RegisterFunction(%q, ...) in an init function", b.function, b.function)
	}
	if err := exported(b.function); err != nil {
		return bad("function", "%q: %v", b.function, err)
	}

	restart := -1
	switch {
	case b.restartTime == NeverRestart:
	case b.restartTime < 0:
		return bad("restart time", "%v is negative; use bgworker.NeverRestart", b.restartTime)
	case b.restartTime%time.Second != 0:
		return bad("restart time", "%v is not a whole number of seconds (PostgreSQL counts bgw_restart_time in seconds)", b.restartTime)
	case b.restartTime/time.Second > math.MaxInt32:
		return bad("restart time", "%v is more than PostgreSQL's limit of %d seconds", b.restartTime, math.MaxInt32)
	default:
		restart = int(b.restartTime / time.Second)
	}

	switch b.startTime {
	case PostmasterStart, ConsistentState, RecoveryFinished:
	default:
		return bad("start time", "%v is not one of PostmasterStart, ConsistentState, RecoveryFinished", b.startTime)
	}
	if b.flags&pg.FlagDatabaseConnection != 0 && b.startTime == PostmasterStart {
		return bad("start time", "a worker with SPI access cannot start at PostmasterStart (no database before recovery)")
	}
	if b.flags&pg.FlagInterruptible != 0 {
		if lim.PGVersionNum < 190000 {
			return bad("interruptible", "EnableInterruptible (BGWORKER_INTERRUPTIBLE) needs PostgreSQL 19 or later; this server is %d.%d",
				lim.PGVersionNum/10000, lim.PGVersionNum%10000)
		}
		if b.flags&pg.FlagDatabaseConnection == 0 {
			return bad("interruptible", "EnableInterruptible needs EnableSPIAccess: only a worker connected to a database can be terminated by commands on it")
		}
	}
	if b.notifyPID < 0 {
		return bad("notify pid", "%d is negative", b.notifyPID)
	}
	return pg.Spec{
		Name: b.name, Type: b.typ, Library: library, Function: b.function, Extra: b.extra,
		Flags: b.flags, StartTime: int(b.startTime), RestartTime: restart,
		Arg: uintptr(b.arg), NotifyPID: b.notifyPID,
	}, nil
}

// resolveLibrary maps the library the user named to the loader's absolute
// path, refusing other libraries: a pggo worker runs this extension's Go code.
func (b *Builder) resolveLibrary(lim pg.Limits, loader string) (string, error) {
	base := filepath.Base(loader)
	ext := strings.TrimSuffix(base, filepath.Ext(base))
	switch b.library {
	case "", loader, base, ext, "$libdir/" + ext, "$libdir/" + base: // "": the default, this extension
	default:
		if strings.IndexByte(b.library, 0) >= 0 {
			return "", errors.New("contains a NUL byte, which PostgreSQL cannot store")
		}
		return "", fmt.Errorf("%q is not this extension: use %q (this library: %s)", b.library, ext, loader)
	}
	if len(loader) > lim.Library-1 {
		return "", fmt.Errorf("the extension's path %q is %d bytes; this PostgreSQL keeps at most %d bytes in bgw_library_name: install it in a shorter directory",
			loader, len(loader), lim.Library-1)
	}
	return loader, nil
}

// invalidUTF8At returns the offset of the first byte of s that is not part
// of a valid UTF-8 sequence.
func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return len(s)
}

func isCIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

package pg

/*
#include <stdlib.h>
#include "csrc/pggo_abi.h"
void set_api_from_export(const pggo_api *a);
char **pggo_environ(void);
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/hooks"
)

// CallFunction is set by package fmgr: it runs the Go function registered
// under name with its arguments (one row, wire format) and returns its result
// (one parameter, wire format).
var CallFunction func(name string, args []byte) ([]byte, error)

// RunWorker is set by package bgworker: it runs the MainFunc registered under
// function. It runs on the process's main thread.
var RunWorker func(function string, arg uintptr) error

var (
	staticMu      sync.Mutex
	collecting    bool
	staticWorkers []Spec
	staticErr     error
)

// Collecting reports whether OnInit hooks are running (static registration
// is possible only then).
func Collecting() bool {
	staticMu.Lock()
	defer staticMu.Unlock()
	return collecting
}

// AddStatic queues a validated worker for registration at server start.
func AddStatic(s Spec) {
	staticMu.Lock()
	defer staticMu.Unlock()
	staticWorkers = append(staticWorkers, s)
}

// FailStatic records a Load error so the server refuses to start even if the
// extension ignored the error Load returned.
func FailStatic(err error) {
	staticMu.Lock()
	defer staticMu.Unlock()
	if staticErr == nil {
		staticErr = err
	}
}

func runInits() (specs []Spec, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("OnInit panicked: %v\n%s", r, debug.Stack())
		}
	}()
	staticMu.Lock()
	collecting = true
	staticMu.Unlock()
	defer func() {
		staticMu.Lock()
		collecting = false
		staticMu.Unlock()
	}()
	for _, fn := range hooks.Inits() {
		if err := fn(); err != nil {
			return nil, fmt.Errorf("OnInit: %w", err)
		}
	}
	staticMu.Lock()
	defer staticMu.Unlock()
	if staticErr != nil {
		return nil, staticErr
	}
	return append([]Spec(nil), staticWorkers...), nil
}

// The role this process plays for pggo, set by the exported entry points:
// what os.Exit and runtime.Goexit may do depends on it.
const (
	roleNone = iota
	roleInit
	roleWorker
	roleFunction
)

var role atomic.Int32

// abiMismatch refuses a loader built with another pggo_api layout: a Go
// library installed over a running server (README, "Deploying and
// upgrading") meets the loader the postmaster preloaded, which only a
// server restart replaces. abi_version is the table's first field in
// every layout, so reading it is safe whatever the rest is.
func abiMismatch(api *C.pggo_api) error {
	if v := int(api.abi_version); v != int(C.PGGO_ABI_VERSION) {
		return fmt.Errorf("pggo: this Go library needs loader ABI %d but the running loader has ABI %d: "+
			"the loader changed with this build; restart PostgreSQL to load it", int(C.PGGO_ABI_VERSION), v)
	}
	return nil
}

//export pggo_go_collect
func pggo_go_collect(api *C.pggo_api, specs **C.pggo_spec, nspecs *C.int, errmsg **C.char) C.int {
	C.set_api_from_export(api)
	role.Store(roleInit)
	list, err := runInits()
	if abiErr := abiMismatch(api); abiErr != nil {
		err = abiErr
	}
	if err != nil {
		*errmsg = C.CString(err.Error())
		return 1
	}
	*nspecs = C.int(len(list))
	if len(list) == 0 {
		return 0
	}
	// The helper process exits right after this: nothing here is freed.
	arr := (*[1 << 16]C.pggo_spec)(C.malloc(C.size_t(len(list)) * C.size_t(unsafe.Sizeof(C.pggo_spec{}))))
	for i, s := range list {
		arr[i] = C.pggo_spec{
			name: C.CString(s.Name), _type: C.CString(s.Type), library: C.CString(s.Library),
			function: C.CString(s.Function), extra: C.CString(s.Extra),
			flags: C.int(s.Flags), start_time: C.int(s.StartTime), restart_time: C.int(s.RestartTime),
			arg: C.uintptr_t(s.Arg), notify_pid: C.int(s.NotifyPID),
		}
	}
	*specs = &arr[0]
	return 0
}

//export pggo_go_regions
func pggo_go_regions(out **C.pggo_region, n *C.int) C.int {
	list := Regions()
	*n = C.int(len(list))
	if len(list) == 0 {
		return 0
	}
	// The helper process exits right after this: nothing here is freed.
	arr := (*[MaxRegions]C.pggo_region)(C.malloc(C.size_t(len(list)) * C.size_t(unsafe.Sizeof(C.pggo_region{}))))
	for i, r := range list {
		arr[i] = C.pggo_region{name: C.CString(r.Name), size: C.uint64_t(r.Size), align: C.uint32_t(r.Align)}
	}
	*out = &arr[0]
	return 0
}

//export pggo_go_run_worker
func pggo_go_run_worker(api *C.pggo_api, function *C.char, arg C.uintptr_t, exit *C.pggo_error) C.int {
	C.set_api_from_export(api)
	role.Store(roleWorker)
	name := C.GoString(function)
	if err := abiMismatch(api); err != nil {
		fillExit(exit, "background worker function", name, err)
		return 1
	}
	err := runWorker(name, uintptr(arg))
	if err == nil {
		return 0
	}
	var req *ExitRequest
	if errors.As(err, &req) {
		// os.Exit on another goroutine, carried out now, on this thread.
		ExitProcess(req.Code, req.message(), "")
	}
	fillExit(exit, "background worker function", name, err)
	return 1
}

//export pggo_go_call_function
func pggo_go_call_function(api *C.pggo_api, function *C.char, args *C.char, argslen C.size_t,
	ret *C.pggo_buf, exit *C.pggo_error) C.int {
	C.set_api_from_export(api)
	role.Store(roleFunction)
	name := C.GoString(function)
	if err := abiMismatch(api); err != nil {
		fillFunctionError(exit, name, err)
		return 1
	}
	out, err := callFunction(name, C.GoBytes(unsafe.Pointer(args), C.int(argslen)))
	if req := pendingExit(); req != nil {
		ExitProcess(req.Code, req.message(), "")
	}
	if err != nil {
		fillFunctionError(exit, name, err)
		return 1
	}
	ret.data = (*C.char)(C.CBytes(out))
	ret.len = C.size_t(len(out))
	return 0
}

var backendOnce sync.Once
var backendErr error

func callFunction(name string, args []byte) (out []byte, err error) {
	finished := false
	defer func() {
		if finished {
			return
		}
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
			return
		}
		goexited("SQL function", name)
	}()
	backendOnce.Do(func() {
		restoreEnviron()
		backendErr = checkSignalMasks()
	})
	if backendErr != nil {
		finished = true
		return nil, backendErr
	}
	if req := pendingExit(); req != nil {
		ExitProcess(req.Code, req.message(), "")
	}
	if CallFunction == nil {
		finished = true
		return nil, errors.New("pggo: the extension does not use package fmgr")
	}
	out, err = CallFunction(name, args)
	finished = true
	return out, err
}

func runWorker(function string, arg uintptr) (err error) {
	finished := false
	defer func() {
		if finished {
			return
		}
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
			return
		}
		goexited("background worker function", function)
	}()
	restoreEnviron()
	if err := checkSignalMasks(); err != nil {
		finished = true
		return err
	}
	if RunWorker == nil {
		finished = true
		return errors.New("pggo: the extension does not use package bgworker")
	}
	err = RunWorker(function, arg)
	finished = true
	if err == nil {
		err = Failed()
	}
	return err
}

// goexited ends the process after runtime.Goexit on the goroutine C called:
// when it finished unwinding, Go would abort the process (the thread is not
// Go's), which PostgreSQL treats as a crash of the whole cluster. Leave the
// way a failing worker does instead: an ERROR, exit code 1.
func goexited(what, name string) {
	ExitProcess(1, fmt.Sprintf("%s %q called runtime.Goexit", what, name),
		"runtime.Goexit ends the goroutine PostgreSQL called into; the process exits instead.\nGo stack:\n"+string(debug.Stack()))
}

// ExitRequest is an os.Exit (or log.Fatal) called on a goroutine other than
// the worker's: only the worker's thread may run PostgreSQL's exit clean-up,
// so the calling goroutine is parked and the worker exits at its next wait
// or call into pggo.
type ExitRequest struct {
	Code int
}

func (r *ExitRequest) Error() string { return r.message() }

func (r *ExitRequest) message() string {
	if r.Code == 0 {
		return "Go code called os.Exit(0) on another goroutine; the worker exits with code 0"
	}
	return "Go code called os.Exit with a non-zero code (or log.Fatal) on another goroutine; the worker exits with code 1"
}

func pendingExit() *ExitRequest {
	var req *ExitRequest
	if err := Failed(); errors.As(err, &req) {
		return req
	}
	return nil
}

// onGoExit runs inside os.Exit (log.Fatal calls it) before the exit system
// call, as one of Go's exit hooks (exithook_pggo.go). Exiting without
// PostgreSQL's proc_exit clean-up is a crash to the postmaster: every
// session would be killed. So on the worker's thread the process leaves
// through proc_exit here and os.Exit never returns; on another goroutine the
// exit is handed to the worker's thread and this goroutine parks forever.
func onGoExit(zero bool) {
	if !Available() || role.Load() == roleInit || role.Load() == roleNone {
		return // the init helper reports its own exit code to the postmaster
	}
	code := 1
	what := "os.Exit with a non-zero code (or log.Fatal)"
	if zero {
		code, what = 0, "os.Exit(0)"
	}
	if OnWorkerThread() {
		ExitProcess(code, fmt.Sprintf("Go code called %s on the worker's goroutine; exiting through proc_exit(%d)", what, code), "")
		return // not reached in PostgreSQL
	}
	Fail(&ExitRequest{Code: code})
	select {}
}

// fillExit describes err for the ERROR the loader raises after Go returns.
func fillExit(exit *C.pggo_error, what, function string, err error) {
	msg := fmt.Sprintf("%s %q failed: %v", what, function, err)
	detail := ""
	var pe *PanicError
	var pgErr *pggo.Error
	if errors.As(err, &pe) {
		msg = fmt.Sprintf("%s %q panicked: %v", what, function, pe.Value)
		detail = "Go stack:\n" + string(pe.Stack)
	}
	if errors.As(err, &pgErr) {
		for i := 0; i < 5 && i < len(pgErr.SQLState); i++ {
			exit.sqlstate[i] = C.char(pgErr.SQLState[i])
		}
		if detail == "" {
			detail = pgErr.Detail
		}
		if pgErr.Hint != "" {
			exit.hint = C.CString(pgErr.Hint)
		}
	}
	exit.message = C.CString(msg)
	if detail != "" {
		exit.detail = C.CString(detail)
	}
}

// fillFunctionError describes a Go SQL function's error for the ERROR its
// caller sees: the error's own message once (a *pggo.Error's Message, with
// its SQLSTATE, detail and hint), and the function's name as the context
// line, where PostgreSQL names the functions an error passed through.
func fillFunctionError(exit *C.pggo_error, function string, err error) {
	msg := err.Error()
	detail, hint := "", ""
	var pe *PanicError
	var pgErr *pggo.Error
	switch {
	case errors.As(err, &pe):
		msg = fmt.Sprintf("SQL function %q panicked: %v", function, pe.Value)
		detail = "Go stack:\n" + string(pe.Stack)
	case errors.As(err, &pgErr) && (pgErr == err || err.Error() == pgErr.Error()):
		// The error itself, or a wrapper adding no text (bgworker.ErrNoSlot's).
		msg = pgErr.Message
	}
	if pgErr != nil {
		for i := 0; i < 5 && i < len(pgErr.SQLState); i++ {
			exit.sqlstate[i] = C.char(pgErr.SQLState[i])
		}
		if detail == "" {
			detail = pgErr.Detail
		}
		hint = pgErr.Hint
	}
	exit.message = C.CString(msg)
	if detail != "" {
		exit.detail = C.CString(detail)
	}
	if hint != "" {
		exit.hint = C.CString(hint)
	}
	exit.context = C.CString(fmt.Sprintf("Go SQL function %q", function))
}

// restoreEnviron gives os.Getenv the server's environment. Go copies the
// environment when its runtime starts, from the memory PostgreSQL has by then
// reused for the process title (ps display), so it sees nothing; the C
// environ array, which PostgreSQL moved out of the way, is intact.
func restoreEnviron() {
	var kv []string
	for p := C.pggo_environ(); *p != nil; p = (**C.char)(unsafe.Add(unsafe.Pointer(p), unsafe.Sizeof(p))) {
		kv = append(kv, C.GoString(*p))
	}
	for _, e := range kv {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			continue
		}
		if cur, set := os.LookupEnv(k); !set || cur != v {
			os.Setenv(k, v)
		}
	}
}

// sigurgBit is SIGURG's bit in /proc's SigBlk mask (signal 23).
const sigurgBit = 1 << (23 - 1)

// checkSignalMasks verifies that every thread blocks SIGURG. PostgreSQL's
// latches read SIGURG through a signalfd; a thread that does not block it
// would consume the wake-up and the worker would sleep through SetLatch.
// The Go runtime keeps SIGURG blocked only with async preemption off, which
// `pggo build` sets at link time.
func checkSignalMasks() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil // not Linux-like /proc: nothing to check
	}
	for _, t := range tasks {
		data, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "status"))
		if err != nil {
			continue // the thread exited meanwhile
		}
		for _, line := range strings.Split(string(data), "\n") {
			hex, ok := strings.CutPrefix(line, "SigBlk:")
			if !ok {
				continue
			}
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err == nil && mask&sigurgBit == 0 {
				return fmt.Errorf("pggo: thread %s does not block SIGURG, so PostgreSQL latch wake-ups "+
					"would be lost; build the extension with `pggo build` (it links with asyncpreemptoff=1)", t.Name())
			}
		}
	}
	return nil
}

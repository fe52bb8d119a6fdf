// Package pg is the Go side of pggo's C boundary: the only package with
// import "C". It calls PostgreSQL exclusively through the table of functions
// the preloaded loader hands over (csrc/pggo_abi.h), so the Go library has no
// undefined PostgreSQL symbols, does not depend on a server version, and its
// packages can be compiled and unit-tested without a server.
//
// Every call that enters PostgreSQL is checked by the loader to run on the
// worker's main thread, and wrapped there in PG_TRY; errors come back as
// *pggo.Error or pggo.ErrWrongThread.
package pg

/*
#include <stdlib.h>
#include "csrc/pggo_abi.h"

extern char **environ;

static const pggo_api *api;

void set_api_from_export(const pggo_api *a) { api = a; }
char **pggo_environ(void) { return environ; }
static int have_api(void) { return api != NULL; }
static const pggo_api *get_api(void) { return api; }

static void call_free(void *p) { if (api) api->free(p); else free(p); }
static int call_on_main_thread(void) { return api->on_main_thread(); }
static int call_has_function(const char *name, char **why) { return api->has_function(name, why); }
static int call_worker_info(pggo_spec *out) { return api->worker_info(out); }
static void call_attach_signals(int flags) { api->attach_signals(flags); }
static int call_take_sighup(void) { return api->take_sighup(); }
static int call_take_sigterm(void) { return api->take_sigterm(); }
static int call_sigterm_seen(void) { return api->sigterm_seen(); }
static void call_set_my_latch(void) { api->set_my_latch(); }
static int call_wait_latch(long ms, int *events, pggo_error *err) { return api->wait_latch(ms, events, err); }
static int call_postmaster_alive(pggo_error *err) { return api->postmaster_alive(err); }
static void call_proc_exit(int code) { api->proc_exit(code); }
static int call_connect(const char *db, const char *user, unsigned dboid, unsigned useroid, int how, pggo_error *err) {
	return api->connect(db, user, dboid, useroid, how, err);
}
static int call_tx_begin(pggo_error *err) { return api->tx_begin(err); }
static int call_tx_commit(pggo_error *err) { return api->tx_commit(err); }
static int call_tx_rollback(pggo_error *err) { return api->tx_rollback(err); }
static int call_spi_exec(const char *sql, size_t sqllen, const char *params, size_t plen, int nparams,
                         int64_t maxrows, pggo_buf *out, pggo_error *err) {
	return api->spi_exec(sql, sqllen, params, plen, nparams, maxrows, out, err);
}
static int call_report_activity(int running, const char *q, size_t len, pggo_error *err) {
	return api->report_activity(running, q, len, err);
}
static int call_get_setting(const char *name, char **value, pggo_error *err) { return api->get_setting(name, value, err); }
static int call_get_real_setting(const char *name, double *v) {
	return api->get_real_setting ? api->get_real_setting(name, v) : 0;
}
static int call_my_proc_pid(void) { return api->my_proc_pid(); }
static unsigned call_my_database_id(void) { return api->my_database_id(); }
static int call_register_dynamic(const pggo_spec *spec, void **handle, pggo_error *err) { return api->register_dynamic(spec, handle, err); }
static int call_bgw_handle(void *handle, int op, int *pid, int *status, pggo_error *err) { return api->bgw_handle(handle, op, pid, status, err); }
static void free_handle(void *h) { free(h); }
static int call_spi_prepare(const char *sql, size_t len, const unsigned *types, int n, void **plan, unsigned **tout, int *nout, pggo_error *err) {
	return api->spi_prepare(sql, len, types, n, plan, tout, nout, err);
}
static int call_spi_free_plan(void *plan, pggo_error *err) { return api->spi_free_plan(plan, err); }
static int call_spi_exec_plan(void *plan, const char *params, size_t plen, int n, int64_t maxrows, pggo_buf *out, pggo_error *err) {
	return api->spi_exec_plan(plan, params, plen, n, maxrows, out, err);
}
static int call_spi_query(void *plan, const char *sql, size_t sqllen, const char *params, size_t plen, int n, long batch, pggo_buf *out, char **portal, pggo_error *err) {
	return api->spi_query(plan, sql, sqllen, params, plen, n, batch, out, portal, err);
}
static int call_spi_fetch(const char *portal, long batch, pggo_buf *out, pggo_error *err) { return api->spi_fetch(portal, batch, out, err); }
static int call_spi_close_cursor(const char *portal, pggo_error *err) { return api->spi_close_cursor(portal, err); }
static int call_subxact(int op, int *level, pggo_error *err) { return api->subxact(op, level, err); }
static int call_log(int level, const char *msg, size_t len, pggo_error *err) { return api->log(level, msg, len, err); }
static void call_notify_work(void) { api->notify_work(); }
static int call_set_wait_event(const char *name, pggo_error *err) { return api->set_wait_event(name, err); }
static void call_set_notify_fd(int fd) { api->set_notify_fd(fd); }
static int call_postmaster_death_fd(void) { return api->postmaster_death_fd(); }
static int call_exit_process(int code, const char *msg, const char *detail) { return api->exit_process(code, msg, detail); }
static int call_spi_prepare_cached(const char *sql, size_t len, const unsigned *types, int n, void **plan, unsigned **tout, int *nout, pggo_error *err) {
	return api->spi_prepare_cached(sql, len, types, n, plan, tout, nout, err);
}
static int call_spi_query_row(void *plan, const char *sql, size_t sqllen, const char *params, size_t plen, int n, pggo_buf *out, pggo_error *err) {
	return api->spi_query_row(plan, sql, sqllen, params, plen, n, out, err);
}
static int call_spi_exec_batch(void *plan, const char *params, size_t plen, int n, int64_t nrows, uint64_t *processed, pggo_error *err) {
	return api->spi_exec_batch(plan, params, plen, n, nrows, processed, err);
}
static int call_param_roundtrip(const char *params, size_t len, unsigned type, char **text, int *isnull, pggo_error *err) {
	return api->param_roundtrip(params, len, type, text, isnull, err);
}

// Shared memory and message queues (shmem.go declares these).
int pggo_call_shmem_region(const char *name, uint64_t size, uint32_t align, void **data, uint32_t **init, int *index, pggo_error *err) {
	return api->shmem_region(name, size, align, data, init, index, err);
}
int pggo_call_shmem_lock(int index, int mode, pggo_error *err) { return api->shmem_lock(index, mode, err); }
int pggo_call_mq_create(size_t size, int role, void **mq, uint32_t *handle, pggo_error *err) { return api->mq_create(size, role, mq, handle, err); }
int pggo_call_mq_attach(uint32_t handle, int role, void **mq, pggo_error *err) { return api->mq_attach(handle, role, mq, err); }
int pggo_call_mq_set_worker(void *mq, void *h, pggo_error *err) { return api->mq_set_worker(mq, h, err); }
int pggo_call_mq_send(void *mq, const char *data, size_t len, int nowait, pggo_error *err) { return api->mq_send(mq, data, len, nowait, err); }
int pggo_call_mq_receive(void *mq, char **data, size_t *len, int nowait, pggo_error *err) { return api->mq_receive(mq, data, len, nowait, err); }
int pggo_call_mq_detach(void *mq, pggo_error *err) { return api->mq_detach(mq, err); }
static unsigned call_my_user_id(void) { return api->my_user_id(); }
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pggo/pggo"
)

// Worker flags, start times, wake flags and events: the values of pggo_abi.h.
const (
	FlagShmemAccess        = int(C.PGGO_SHMEM_ACCESS)
	FlagDatabaseConnection = int(C.PGGO_DATABASE_CONNECTION)
	FlagInterruptible      = int(C.PGGO_INTERRUPTIBLE)

	StartPostmaster       = int(C.PGGO_START_POSTMASTER)
	StartConsistent       = int(C.PGGO_START_CONSISTENT)
	StartRecoveryFinished = int(C.PGGO_START_RECOVERY_FINISHED)

	WakeSIGHUP  = int(C.PGGO_WAKE_SIGHUP)
	WakeSIGTERM = int(C.PGGO_WAKE_SIGTERM)

	EventLatch           = int(C.PGGO_EV_LATCH)
	EventTimeout         = int(C.PGGO_EV_TIMEOUT)
	EventPostmasterDeath = int(C.PGGO_EV_POSTMASTER_DEATH)
	EventWork            = int(C.PGGO_EV_WORK)

	LogDebug   = int(C.PGGO_LOG_DEBUG)
	LogLog     = int(C.PGGO_LOG_LOG)
	LogInfo    = int(C.PGGO_LOG_INFO)
	LogNotice  = int(C.PGGO_LOG_NOTICE)
	LogWarning = int(C.PGGO_LOG_WARNING)
)

// ErrNotInPostgres is returned when pggo is used outside a process started by
// PostgreSQL through pggo's loader (for example in a plain `go test`).
var ErrNotInPostgres = errors.New("pggo: not running inside PostgreSQL (no pggo loader in this process)")

// ErrNotInTransaction is returned by SPI calls made outside bgworker.Transaction.
var ErrNotInTransaction = errors.New("pggo: SPI needs a transaction: call it inside bgworker.Transaction")

// Spec describes one background worker, field for field as PostgreSQL's
// BackgroundWorker struct does.
type Spec struct {
	Name, Type, Library, Function, Extra string
	Flags, StartTime                     int
	RestartTime                          int // seconds; -1 = never restart
	Arg                                  uintptr
	NotifyPID                            int
}

// Limits are the sizes of BackgroundWorker's fields, including the
// terminating NUL, as the loader was compiled with.
type Limits struct {
	Name, Extra, Library int
	PGVersionNum         int
}

// Available reports whether this process was started through pggo's loader.
func Available() bool { return C.have_api() != 0 }

func needAPI() error {
	if !Available() {
		return ErrNotInPostgres
	}
	return nil
}

// GetLimits returns the field sizes of the server this library runs in.
func GetLimits() (Limits, error) {
	if err := needAPI(); err != nil {
		return Limits{}, err
	}
	a := C.get_api()
	return Limits{Name: int(a.bgw_maxlen), Extra: int(a.bgw_extralen), Library: int(a.library_maxlen),
		PGVersionNum: int(a.pg_version_num)}, nil
}

// LoaderPath is the absolute path of the preloaded library ("" outside PostgreSQL).
func LoaderPath() string {
	if !Available() {
		return ""
	}
	return C.GoString(C.get_api().loader_path)
}

// OnWorkerThread reports whether the caller runs on the thread that may call
// PostgreSQL (false outside PostgreSQL).
func OnWorkerThread() bool { return Available() && C.call_on_main_thread() != 0 }

// HasFunction checks that the loader exports a trampoline called name.
func HasFunction(name string) error {
	if err := needAPI(); err != nil {
		return err
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var why *C.char
	if C.call_has_function(cs, &why) != 0 {
		return nil
	}
	defer C.call_free(unsafe.Pointer(why))
	return errors.New(C.GoString(why))
}

// convError turns a pggo_error into a Go error and frees its strings.
func convError(e *C.pggo_error) error {
	take := func(p *C.char) string {
		if p == nil {
			return ""
		}
		s := C.GoString(p)
		C.call_free(unsafe.Pointer(p))
		return s
	}
	msg, detail, hint, context := take(e.message), take(e.detail), take(e.hint), take(e.context)
	switch e.code {
	case C.PGGO_EWRONG_THREAD:
		return pggo.ErrWrongThread
	case C.PGGO_ENOTX:
		return ErrNotInTransaction
	}
	return &pggo.Error{
		Severity: "ERROR",
		SQLState: C.GoString(&e.sqlstate[0]),
		Message:  msg,
		Detail:   detail,
		Hint:     hint,
		Context:  context,
		Position: int(e.cursorpos),
	}
}

// Info returns the running worker's registration (MyBgworkerEntry).
func Info() (Spec, error) {
	if err := needAPI(); err != nil {
		return Spec{}, err
	}
	var s C.pggo_spec
	if C.call_worker_info(&s) != 0 {
		return Spec{}, errors.New("pggo: this process is not a background worker")
	}
	return Spec{
		Name: C.GoString(s.name), Type: C.GoString(s._type), Library: C.GoString(s.library),
		Function: C.GoString(s.function), Extra: C.GoString(s.extra),
		Flags: int(s.flags), StartTime: int(s.start_time), RestartTime: int(s.restart_time),
		Arg: uintptr(s.arg), NotifyPID: int(s.notify_pid),
	}, nil
}

// AttachSignals selects which signals set the worker's latch (WakeSIGHUP,
// WakeSIGTERM). It only stores a flag the handlers read.
func AttachSignals(flags int) {
	if Available() {
		C.call_attach_signals(C.int(flags))
	}
}

// TakeSighup reports and clears the SIGHUP flag.
func TakeSighup() bool { return Available() && C.call_take_sighup() != 0 }

// TakeSigterm reports and clears the SIGTERM flag.
func TakeSigterm() bool { return Available() && C.call_take_sigterm() != 0 }

// SigtermSeen reports whether SIGTERM ever arrived (it is never cleared).
func SigtermSeen() bool { return Available() && C.call_sigterm_seen() != 0 }

// SetMyLatch wakes the worker's WaitLatch. Safe from any goroutine.
func SetMyLatch() {
	if Available() {
		C.call_set_my_latch()
	}
}

// NotifyWork wakes the worker's WaitLatch to serve work queued from another
// goroutine (bgworker.Do, log records), without counting as a Wake. Safe
// from any goroutine.
func NotifyWork() {
	if Available() {
		C.call_notify_work()
	}
}

// SetWaitEvent names the wait event WaitLatch reports (PostgreSQL 17+;
// before, the Extension class's "Extension").
func SetWaitEvent(name string) error {
	if err := needAPI(); err != nil {
		return err
	}
	if strings.IndexByte(name, 0) >= 0 {
		return errors.New("pggo: the wait event name contains a NUL byte")
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var e C.pggo_error
	if C.call_set_wait_event(cn, &e) != 0 {
		return convError(&e)
	}
	return nil
}

// SetNotifyFD gives the loader the write end of a non-blocking pipe: its
// SIGTERM handler writes a byte there (bgworker.Context listens).
func SetNotifyFD(fd int) {
	if Available() {
		C.call_set_notify_fd(C.int(fd))
	}
}

// PostmasterDeathFD is PostgreSQL's postmaster-death pipe (read end; EOF
// once the postmaster died), or -1.
func PostmasterDeathFD() int {
	if !Available() {
		return -1
	}
	return int(C.call_postmaster_death_fd())
}

// WaitLatch waits on the worker's latch (timeoutMS < 0: no timeout).
func WaitLatch(timeoutMS int64) (int, error) {
	if err := needAPI(); err != nil {
		return 0, err
	}
	var ev C.int
	var e C.pggo_error
	if C.call_wait_latch(C.long(timeoutMS), &ev, &e) != 0 {
		return int(ev), convError(&e)
	}
	return int(ev), nil
}

// PostmasterAlive reports whether the postmaster still runs.
func PostmasterAlive() (bool, error) {
	if err := needAPI(); err != nil {
		return false, err
	}
	var e C.pggo_error
	switch C.call_postmaster_alive(&e) {
	case 1:
		return true, nil
	case 0:
		return false, nil
	}
	return false, convError(&e)
}

// ProcExit ends the process through PostgreSQL's proc_exit (runs its exit
// hooks, releases shared resources) with the given exit code. On another
// goroutine than the worker's it does nothing: only the worker's thread may
// run PostgreSQL's clean-up, and leaving without it is a crash.
func ProcExit(code int) {
	if Available() {
		C.call_proc_exit(C.int(code))
		return
	}
	os.Exit(code)
}

// ExitProcess leaves the process as PostgreSQL would: a worker logs message
// and exits 0 (code 0), or logs it as an ERROR and exits 1 (any other code);
// a backend ends with FATAL. It returns false, doing nothing, where that is
// impossible: outside PostgreSQL, on another goroutine than the worker's,
// or in the init helper (which must exit with its own code).
func ExitProcess(code int, message, detail string) bool {
	if !Available() {
		return false
	}
	cm := C.CString(message)
	defer C.free(unsafe.Pointer(cm))
	var cd *C.char
	if detail != "" {
		cd = C.CString(detail)
		defer C.free(unsafe.Pointer(cd))
	}
	C.call_exit_process(C.int(code), cm, cd)
	return false
}

// ParamRoundTrip converts one parameter (wire format) into a Datum of type
// typ with the loader's conversion code, and returns that Datum's text
// (the type's output function). For the fuzz tests of the parameter path;
// it needs a transaction (a SQL function has one).
func ParamRoundTrip(param []byte, typ uint32) (text string, isNull bool, err error) {
	if err := needAPI(); err != nil {
		return "", false, err
	}
	pp, pl := paramPtr(param)
	var ct *C.char
	var cnull C.int
	var e C.pggo_error
	if C.call_param_roundtrip(pp, pl, C.uint(typ), &ct, &cnull, &e) != 0 {
		return "", false, convError(&e)
	}
	if cnull != 0 {
		return "", true, nil
	}
	if ct == nil {
		return "", false, errors.New("pggo: out of memory")
	}
	text = C.GoString(ct)
	C.call_free(unsafe.Pointer(ct))
	return text, false, nil
}

// Connect runs BackgroundWorkerInitializeConnection ("" = NULL).
// Connection flags (PGGO_CONNECT_*), for Connect and ConnectByOID.
const (
	ConnectBypassAllowConn      = int(C.PGGO_CONNECT_BYPASS_ALLOWCONN)
	ConnectBypassRoleLoginCheck = int(C.PGGO_CONNECT_BYPASS_ROLELOGINCHECK)
	connectByOID                = int(C.PGGO_CONNECT_BY_OID)
)

func Connect(db, user string, flags int) error {
	if err := needAPI(); err != nil {
		return err
	}
	var cdb, cuser *C.char
	if db != "" {
		cdb = C.CString(db)
		defer C.free(unsafe.Pointer(cdb))
	}
	if user != "" {
		cuser = C.CString(user)
		defer C.free(unsafe.Pointer(cuser))
	}
	var e C.pggo_error
	if C.call_connect(cdb, cuser, 0, 0, C.int(flags), &e) != 0 {
		return convError(&e)
	}
	return nil
}

// ConnectByOID runs BackgroundWorkerInitializeConnectionByOid.
func ConnectByOID(db, user uint32, flags int) error {
	if err := needAPI(); err != nil {
		return err
	}
	var e C.pggo_error
	if C.call_connect(nil, nil, C.uint(db), C.uint(user), C.int(flags|connectByOID), &e) != 0 {
		return convError(&e)
	}
	return nil
}

// TxBegin starts a transaction, connects SPI and pushes a snapshot.
func TxBegin() error {
	if err := needAPI(); err != nil {
		return err
	}
	var e C.pggo_error
	if C.call_tx_begin(&e) != 0 {
		return convError(&e)
	}
	return nil
}

// TxCommit finishes SPI and commits; if a statement failed, the transaction
// was already rolled back and this returns the 25P02 error.
func TxCommit() error {
	if err := needAPI(); err != nil {
		return err
	}
	var e C.pggo_error
	if C.call_tx_commit(&e) != 0 {
		return convError(&e)
	}
	return nil
}

// TxRollback aborts the transaction if it is still open.
func TxRollback() error {
	if err := needAPI(); err != nil {
		return err
	}
	var e C.pggo_error
	if C.call_tx_rollback(&e) != 0 {
		return convError(&e)
	}
	return nil
}

// Exec runs one SQL string with parameters encoded by internal/wire and
// returns the result in wire format (copied into Go memory); maxrows < 0
// returns only the count of processed rows.
func Exec(sql string, params []byte, nparams int, maxrows int64) ([]byte, uint64, error) {
	if err := needAPI(); err != nil {
		return nil, 0, err
	}
	if strings.IndexByte(sql, 0) >= 0 {
		return nil, 0, errors.New("spi: the SQL text contains a NUL byte")
	}
	var out C.pggo_buf
	var e C.pggo_error
	var sqlp, pp *C.char
	// Both are Go memory without Go pointers, valid for the call (cgo rules).
	if len(sql) > 0 {
		sqlp = (*C.char)(unsafe.Pointer(unsafe.StringData(sql)))
	}
	if len(params) > 0 {
		pp = (*C.char)(unsafe.Pointer(&params[0]))
	}
	if C.call_spi_exec(sqlp, C.size_t(len(sql)), pp, C.size_t(len(params)), C.int(nparams),
		C.int64_t(maxrows), &out, &e) != 0 {
		return nil, 0, convError(&e)
	}
	return takeBuf(&out), uint64(out.processed), nil
}

// Plan is a prepared statement kept by the loader across transactions.
type Plan struct{ p unsafe.Pointer }

func goBytes(sql string) (*C.char, C.size_t) {
	if len(sql) == 0 {
		return nil, 0
	}
	// Go memory without Go pointers, valid for the call (cgo rules).
	return (*C.char)(unsafe.Pointer(unsafe.StringData(sql))), C.size_t(len(sql))
}

func paramPtr(params []byte) (*C.char, C.size_t) {
	if len(params) == 0 {
		return nil, 0
	}
	return (*C.char)(unsafe.Pointer(&params[0])), C.size_t(len(params))
}

// takeBuf copies a result the loader owns (valid until its next call).
func takeBuf(out *C.pggo_buf) []byte {
	if out.data == nil || out.len == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(out.data), C.int(out.len))
}

// Prepare parses and plans sql once; types fix parameter types (0 = infer).
// It returns the plan and the parameter types PostgreSQL settled on.
func Prepare(sql string, types []uint32) (*Plan, []uint32, error) {
	return prepare(sql, types, false)
}

// PrepareCached is Prepare for spi's plan cache: it returns a nil plan and
// no error for a statement not worth keeping (anything but one SELECT,
// INSERT, UPDATE, DELETE or MERGE), which then runs as a one-shot plan.
func PrepareCached(sql string, types []uint32) (*Plan, []uint32, error) {
	return prepare(sql, types, true)
}

func prepare(sql string, types []uint32, cacheOnly bool) (*Plan, []uint32, error) {
	if err := needAPI(); err != nil {
		return nil, nil, err
	}
	if strings.IndexByte(sql, 0) >= 0 {
		return nil, nil, errors.New("spi: the SQL text contains a NUL byte")
	}
	sp, sl := goBytes(sql)
	var tp *C.unsigned
	if len(types) > 0 {
		tp = (*C.unsigned)(unsafe.Pointer(&types[0]))
	}
	var plan unsafe.Pointer
	var tout *C.unsigned
	var nout C.int
	var e C.pggo_error
	var rc C.int
	if cacheOnly {
		rc = C.call_spi_prepare_cached(sp, sl, tp, C.int(len(types)), &plan, &tout, &nout, &e)
	} else {
		rc = C.call_spi_prepare(sp, sl, tp, C.int(len(types)), &plan, &tout, &nout, &e)
	}
	if rc != 0 {
		return nil, nil, convError(&e)
	}
	if plan == nil {
		return nil, nil, nil
	}
	settled := make([]uint32, int(nout))
	copy(settled, unsafe.Slice((*uint32)(unsafe.Pointer(tout)), int(nout)))
	C.call_free(unsafe.Pointer(tout))
	return &Plan{p: plan}, settled, nil
}

// FreePlan releases a plan (SPI_freeplan); on the worker's thread only.
func FreePlan(p *Plan) error {
	if err := needAPI(); err != nil {
		return err
	}
	if p == nil || p.p == nil {
		return nil
	}
	var e C.pggo_error
	if C.call_spi_free_plan(p.p, &e) != 0 {
		return convError(&e)
	}
	p.p = nil
	return nil
}

// ExecPlan runs a prepared plan to completion.
func ExecPlan(p *Plan, params []byte, nparams int, maxrows int64) ([]byte, uint64, error) {
	if err := needAPI(); err != nil {
		return nil, 0, err
	}
	if p == nil || p.p == nil {
		return nil, 0, errors.New("spi: statement is closed")
	}
	pp, pl := paramPtr(params)
	var out C.pggo_buf
	var e C.pggo_error
	if C.call_spi_exec_plan(p.p, pp, pl, C.int(nparams), C.int64_t(maxrows), &out, &e) != 0 {
		return nil, 0, convError(&e)
	}
	return takeBuf(&out), uint64(out.processed), nil
}

// QueryRow runs p (or sql when p is nil) for its first row, without a
// cursor: a single SELECT stops there, any other statement runs to
// completion. The result holds at most one row.
func QueryRow(p *Plan, sql string, params []byte, nparams int) ([]byte, error) {
	if err := needAPI(); err != nil {
		return nil, err
	}
	var plan unsafe.Pointer
	if p != nil {
		if p.p == nil {
			return nil, errors.New("spi: statement is closed")
		}
		plan = p.p
	} else if strings.IndexByte(sql, 0) >= 0 {
		return nil, errors.New("spi: the SQL text contains a NUL byte")
	}
	sp, sl := goBytes(sql)
	pp, pl := paramPtr(params)
	var out C.pggo_buf
	var e C.pggo_error
	if C.call_spi_query_row(plan, sp, sl, pp, pl, C.int(nparams), &out, &e) != 0 {
		return nil, convError(&e)
	}
	return takeBuf(&out), nil
}

// ExecBatch runs a prepared plan once per argument row in one call into
// the loader: params holds nrows rows of nparams records each. It returns
// the rows processed by all runs together.
func ExecBatch(p *Plan, params []byte, nparams int, nrows int) (uint64, error) {
	if err := needAPI(); err != nil {
		return 0, err
	}
	if p == nil || p.p == nil {
		return 0, errors.New("spi: statement is closed")
	}
	pp, pl := paramPtr(params)
	var processed C.uint64_t
	var e C.pggo_error
	if C.call_spi_exec_batch(p.p, pp, pl, C.int(nparams), C.int64_t(nrows), &processed, &e) != 0 {
		return 0, convError(&e)
	}
	return uint64(processed), nil
}

// Query runs p (or sql when p is nil). A statement returning rows gets a
// cursor: the first batch comes back with the cursor's name ("" when the
// statement ran to completion) and whether the cursor may hold more rows.
// A batch holds at most batch rows, and fewer when they are large (the
// loader bounds a batch by bytes too).
func Query(p *Plan, sql string, params []byte, nparams int, batch int) (buf []byte, portal string, more bool, err error) {
	if err := needAPI(); err != nil {
		return nil, "", false, err
	}
	var plan unsafe.Pointer
	if p != nil {
		if p.p == nil {
			return nil, "", false, errors.New("spi: statement is closed")
		}
		plan = p.p
	} else if strings.IndexByte(sql, 0) >= 0 {
		return nil, "", false, errors.New("spi: the SQL text contains a NUL byte")
	}
	sp, sl := goBytes(sql)
	pp, pl := paramPtr(params)
	var out C.pggo_buf
	var cportal *C.char
	var e C.pggo_error
	if C.call_spi_query(plan, sp, sl, pp, pl, C.int(nparams), C.long(batch), &out, &cportal, &e) != 0 {
		return nil, "", false, convError(&e)
	}
	if cportal != nil {
		portal = C.GoString(cportal)
		C.call_free(unsafe.Pointer(cportal))
	}
	return takeBuf(&out), portal, out.more != 0, nil
}

// Fetch reads the next batch of a cursor, and whether it may hold more.
func Fetch(portal string, batch int) ([]byte, bool, error) {
	if err := needAPI(); err != nil {
		return nil, false, err
	}
	cp := C.CString(portal)
	defer C.free(unsafe.Pointer(cp))
	var out C.pggo_buf
	var e C.pggo_error
	if C.call_spi_fetch(cp, C.long(batch), &out, &e) != 0 {
		return nil, false, convError(&e)
	}
	return takeBuf(&out), out.more != 0, nil
}

// CloseCursor closes a cursor if it still exists.
func CloseCursor(portal string) error {
	if err := needAPI(); err != nil {
		return err
	}
	cp := C.CString(portal)
	defer C.free(unsafe.Pointer(cp))
	var e C.pggo_error
	if C.call_spi_close_cursor(cp, &e) != 0 {
		return convError(&e)
	}
	return nil
}

// Subtransaction operations.
const (
	SubBegin    = int(C.PGGO_SUB_BEGIN)
	SubRelease  = int(C.PGGO_SUB_RELEASE)
	SubRollback = int(C.PGGO_SUB_ROLLBACK)
)

// Subxact begins (returning its level) or ends (level given) a subtransaction.
func Subxact(op, level int) (int, error) {
	if err := needAPI(); err != nil {
		return 0, err
	}
	l := C.int(level)
	var e C.pggo_error
	if C.call_subxact(C.int(op), &l, &e) != 0 {
		return 0, convError(&e)
	}
	return int(l), nil
}

// ReportActivity sets the worker's pg_stat_activity state and query.
func ReportActivity(running bool, query string) error {
	if err := needAPI(); err != nil {
		return err
	}
	cq := C.CString(query)
	defer C.free(unsafe.Pointer(cq))
	r := 0
	if running {
		r = 1
	}
	var e C.pggo_error
	if C.call_report_activity(C.int(r), cq, C.size_t(len(query)), &e) != 0 {
		return convError(&e)
	}
	return nil
}

// Log writes msg to the server log at the given level.
func Log(level int, msg string) error {
	if err := needAPI(); err != nil {
		return err
	}
	cm := C.CString(msg)
	defer C.free(unsafe.Pointer(cm))
	var e C.pggo_error
	if C.call_log(C.int(level), cm, C.size_t(len(msg)), &e) != 0 {
		return convError(&e)
	}
	return nil
}

// Setting returns the value of a configuration setting and whether it exists.
func Setting(name string) (string, bool, error) {
	if err := needAPI(); err != nil {
		return "", false, err
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var v *C.char
	var e C.pggo_error
	switch C.call_get_setting(cn, &v, &e) {
	case 1:
		defer C.call_free(unsafe.Pointer(v))
		return C.GoString(v), true, nil
	case 0:
		return "", false, nil
	}
	return "", false, convError(&e)
}

// RealSetting is the exact value of a real setting the loader defined in
// this process; false where it is a placeholder (read its text then).
func RealSetting(name string) (float64, bool, error) {
	if err := needAPI(); err != nil {
		return 0, false, err
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var v C.double
	switch C.call_get_real_setting(cn, &v) {
	case 1:
		return float64(v), true, nil
	case 0:
		return 0, false, nil
	}
	return 0, false, pggo.ErrWrongThread
}

// useAPI is set_api_from_export for the other files' exports.
func useAPI(api *C.pggo_api) { C.set_api_from_export(api) }

// MyProcPID is PostgreSQL's MyProcPid (0 outside PostgreSQL).
func MyProcPID() int {
	if !Available() {
		return 0
	}
	return int(C.call_my_proc_pid())
}

// MyUserID is GetUserId(): the current role (0 outside PostgreSQL).
func MyUserID() uint32 {
	if !Available() {
		return 0
	}
	return uint32(C.call_my_user_id())
}

// MyDatabaseID is PostgreSQL's MyDatabaseId: the OID of the database this
// process is connected to (0 if none, or outside PostgreSQL).
func MyDatabaseID() uint32 {
	if !Available() {
		return 0
	}
	return uint32(C.call_my_database_id())
}

// Dynamic worker handle operations and states (pggo_abi.h).
const (
	BgwGetPID       = int(C.PGGO_BGW_GET_PID)
	BgwWaitStartup  = int(C.PGGO_BGW_WAIT_STARTUP)
	BgwWaitShutdown = int(C.PGGO_BGW_WAIT_SHUTDOWN)
	BgwTerminate    = int(C.PGGO_BGW_TERMINATE)

	BgwStarted        = int(C.PGGO_BGWH_STARTED)
	BgwNotYetStarted  = int(C.PGGO_BGWH_NOT_YET_STARTED)
	BgwStopped        = int(C.PGGO_BGWH_STOPPED)
	BgwPostmasterDied = int(C.PGGO_BGWH_POSTMASTER_DIED)
)

// Handle is a dynamic worker's BackgroundWorkerHandle, in C memory.
type Handle struct{ p unsafe.Pointer }

// Free releases the handle's memory; safe from any goroutine (a finalizer).
func (h *Handle) Free() {
	if h.p != nil {
		C.free_handle(h.p)
		h.p = nil
	}
}

// RegisterDynamic runs RegisterDynamicBackgroundWorker. noSlot tells that
// err is the server being full (nothing raised, nothing registered).
func RegisterDynamic(s Spec) (h *Handle, noSlot bool, err error) {
	if err := needAPI(); err != nil {
		return nil, false, err
	}
	strs := []*C.char{C.CString(s.Name), C.CString(s.Type), C.CString(s.Library), C.CString(s.Function), C.CString(s.Extra)}
	defer func() {
		for _, p := range strs {
			C.free(unsafe.Pointer(p))
		}
	}()
	spec := C.pggo_spec{
		name: strs[0], _type: strs[1], library: strs[2], function: strs[3], extra: strs[4],
		flags: C.int(s.Flags), start_time: C.int(s.StartTime), restart_time: C.int(s.RestartTime),
		arg: C.uintptr_t(s.Arg), notify_pid: C.int(s.NotifyPID),
	}
	var p unsafe.Pointer
	var e C.pggo_error
	if C.call_register_dynamic(&spec, &p, &e) != 0 {
		full := e.code == C.PGGO_ENOSLOT
		return nil, full, convError(&e)
	}
	return &Handle{p: p}, false, nil
}

// HandleOp runs one operation on a dynamic worker's handle and returns the
// worker's pid (when started) and state.
func HandleOp(h *Handle, op int) (pid, status int, err error) {
	if err := needAPI(); err != nil {
		return 0, 0, err
	}
	if h == nil || h.p == nil {
		return 0, 0, errors.New("pggo: the dynamic worker's handle was released")
	}
	var cpid, cstatus C.int
	var e C.pggo_error
	if C.call_bgw_handle(h.p, C.int(op), &cpid, &cstatus, &e) != 0 {
		return 0, 0, convError(&e)
	}
	return int(cpid), int(cstatus), nil
}

// ---------------------------------------------------------------------
// Deferred worker failure: a goroutine started with bgworker.Go panicked,
// or a PostgreSQL call came from the wrong goroutine. The worker's main
// goroutine picks it up at its next wait.

var (
	deferredMu  sync.Mutex
	deferredErr error
	hasDeferred atomic.Bool
)

// Fail records err as the reason the worker must end (the first one wins)
// and wakes the worker. Safe from any goroutine.
func Fail(err error) {
	deferredMu.Lock()
	if deferredErr == nil {
		deferredErr = err
		hasDeferred.Store(true)
	}
	deferredMu.Unlock()
	SetMyLatch()
}

// Failed returns the error recorded by Fail, or nil.
func Failed() error {
	if !hasDeferred.Load() {
		return nil
	}
	deferredMu.Lock()
	defer deferredMu.Unlock()
	return deferredErr
}

// Abort is the panic value that carries a deferred failure (see Fail) up the
// worker's stack to its dispatcher; Transaction and Savepoint re-raise it.
type Abort struct{ Err error }

// PanicError is a recovered Go panic, with the stack of the goroutine that
// panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// Unwrap exposes a panicked error value to errors.Is/As.
func (p *PanicError) Unwrap() error {
	if err, ok := p.Value.(error); ok {
		return err
	}
	return nil
}

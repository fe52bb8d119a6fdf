// Package pggo runs Go code inside PostgreSQL as background workers.
//
// A pggo extension is a Go main package built with `pggo build`. It produces two
// files: a small C library that PostgreSQL preloads (it never starts the Go
// runtime, so the postmaster stays single-threaded and can fork safely) and a Go
// library that is opened only inside the processes PostgreSQL forks for workers.
//
// This package holds what every other pggo package shares: the init hook
// ([OnInit]), PostgreSQL's Datum and Oid, and [Error], a PostgreSQL error as a Go
// value. The workers themselves live in package bgworker, data access in spi.
//
// See it working: `make demo` in the repository builds examples/worker_spi,
// preloads it into a throwaway PostgreSQL cluster and shows its workers counting.
package pggo

import (
	"errors"
	"fmt"

	"github.com/pggo/pggo/internal/hooks"
)

// Datum is PostgreSQL's generic value word. Only pass-by-value types travel in
// it between processes: a pointer Datum made in one process means nothing in
// another.
type Datum uintptr

// Oid is a PostgreSQL object identifier (a database, a role, a type, ...).
type Oid uint32

// Int32Datum packs an int32 as PostgreSQL's Int32GetDatum does.
func Int32Datum(v int32) Datum { return Datum(uint32(v)) }

// Int64Datum packs an int64 as Int64GetDatum does on 64-bit platforms.
func Int64Datum(v int64) Datum { return Datum(uint64(v)) }

// BoolDatum packs a bool as BoolGetDatum does.
func BoolDatum(v bool) Datum {
	if v {
		return 1
	}
	return 0
}

// Int32 unpacks a Datum made by [Int32Datum] (DatumGetInt32).
func (d Datum) Int32() int32 { return int32(uint32(d)) }

// Int64 unpacks a Datum made by [Int64Datum] (DatumGetInt64).
func (d Datum) Int64() int64 { return int64(d) }

// Bool unpacks a Datum made by [BoolDatum] (DatumGetBool: any non-zero byte is true).
func (d Datum) Bool() bool { return d&0xff != 0 }

// OnInit registers fn to run where PostgreSQL runs an extension's _PG_init:
// once at server start, when the extension is in shared_preload_libraries.
// Static background workers are registered from here (bgworker.Builder.Load).
//
// fn runs in a short-lived helper process forked by the preloaded C library,
// not in the postmaster itself (the Go runtime must never start there). Only
// what fn registers survives; other side effects stay in the helper. If fn
// returns an error, the server does not start and the log says why.
func OnInit(fn func() error) {
	hooks.AddInit(fn)
}

// Error is a PostgreSQL error (an ereport at level ERROR or above) returned as
// a Go value. Use errors.As to inspect the SQLSTATE.
type Error struct {
	Severity string // "ERROR", "FATAL", ...
	SQLState string // five-character SQLSTATE code, e.g. "23505"
	Message  string // primary message
	Detail   string // optional detail
	Hint     string // optional hint
	Context  string // where it happened (PL/pgSQL call stack, ...)
	Position int    // 1-based character position in the SQL text of a syntax error; 0 if none
}

// Error returns "SEVERITY: message (SQLSTATE code)" on one line, as jackc/pgx
// does; Detail, Hint and Context stay in their fields.
func (e *Error) Error() string {
	sev := e.Severity
	if sev == "" {
		sev = "ERROR"
	}
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", sev, e.Message, e.SQLState)
}

// ErrWrongThread is returned by any call that would enter PostgreSQL from a
// goroutine other than the one running the worker's MainFunc. PostgreSQL is
// single-threaded: only that goroutine (locked to the process's main thread)
// may use it. Hand the work to it instead, e.g. over a channel that the main
// loop reads after bgworker.WaitLatch.
var ErrWrongThread = errors.New("pggo: PostgreSQL can only be called from the worker's own goroutine (the one running its MainFunc)")

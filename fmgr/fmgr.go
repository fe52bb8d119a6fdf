// Package fmgr exposes Go functions to SQL, as C extensions do with
// PG_FUNCTION_INFO_V1 (PostgreSQL's function manager).
//
// Register a function in an init function of the extension's main package,
// with string literals for its name and SQL signature:
//
//	fmgr.Register("worker_spi_launch", "(index int4) RETURNS int4 STRICT", launch)
//
// `pggo build` then exports a C function of that name from the preloaded
// library and writes NAME.sql next to it, with the CREATE FUNCTION
// statements and a REVOKE of every function from PUBLIC: SQL-callable Go code
// can start processes and do anything a superuser can, so calling it is the
// administrator's choice (GRANT EXECUTE ON FUNCTION ... TO role). Run it once
// per database: psql -f build/NAME.sql.
//
// A Go function runs in the calling backend, on its thread: the Go runtime
// is loaded in that backend at the first call (never in the postmaster). It
// may launch dynamic workers (bgworker.Builder.LoadDynamic) and wait for
// them, and run SQL through package spi in the caller's transaction (see
// package spi).
package fmgr

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/pggo/pggo/internal/pg"
	"github.com/pggo/pggo/internal/wire"
)

// Func is a SQL-callable Go function. Its result is converted to the
// function's declared SQL return type: nil is NULL; integers, floats, bools,
// strings, []byte and time.Time as for spi parameters (a string goes through
// the return type's input function). A returned error becomes an ERROR in
// the calling session (with its SQLSTATE when it is a *pggo.Error); a panic
// becomes an ERROR too, and the session goes on.
type Func func(args *Args) (any, error)

var (
	mu    sync.Mutex
	funcs = map[string]entry{}
)

type entry struct {
	signature string
	fn        Func
}

// Register makes fn callable from SQL as name. signature is the SQL text
// that follows the name in CREATE FUNCTION: arguments, RETURNS and options
// such as STRICT, e.g. "(n int4) RETURNS int8 STRICT". Both must be string
// literals: `pggo build` reads them to generate the C entry point and the SQL.
func Register(name, signature string, fn Func) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := funcs[name]; dup {
		panic(fmt.Sprintf("fmgr.Register(%q): registered twice", name))
	}
	funcs[name] = entry{signature, fn}
}

func init() {
	pg.CallFunction = call
}

func call(name string, argBuf []byte) ([]byte, error) {
	mu.Lock()
	e, ok := funcs[name]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no Go function is registered as %q (fmgr.Register)", name)
	}
	res, err := wire.DecodeResult(argBuf)
	if err != nil {
		return nil, fmt.Errorf("fmgr: arguments: %w", err)
	}
	args := &Args{cols: res.Columns}
	if res.NumRows == 1 {
		args.vals = res.Row(0, nil)
	}
	out, err := e.fn(args)
	if err != nil {
		return nil, err
	}
	switch r := out.(type) {
	case Rows:
		return encodeRows(r)
	case *Rows:
		return encodeRows(*r)
	}
	return wire.EncodeParams([]any{out})
}

// Args are the arguments of one SQL call.
type Args struct {
	cols []wire.Column
	vals []wire.Value
}

// Len is the number of arguments.
func (a *Args) Len() int { return len(a.vals) }

// IsNull reports whether argument i (from 0) is NULL.
func (a *Args) IsNull(i int) bool { return a.vals[i].Kind == wire.KindNull }

// Value returns argument i (from 0) as a natural Go value (nil for NULL).
func (a *Args) Value(i int) (any, error) { return a.vals[i].Natural() }

// Scan copies the arguments into dest, one per argument, with the
// conversions of spi's Rows.Scan (pointers to pointers accept NULL).
func (a *Args) Scan(dest ...any) error {
	if len(dest) != len(a.vals) {
		return fmt.Errorf("fmgr: Scan got %d destinations for %d arguments", len(dest), len(a.vals))
	}
	for i, d := range dest {
		if err := wire.Assign(d, a.vals[i], a.cols[i], i); err != nil {
			return err
		}
	}
	return nil
}

// Rows is the result of a set-returning function, declared RETURNS SETOF
// type, or RETURNS SETOF record and called with a column definition list
// (SELECT * FROM f() AS (a int, b text)). Each row has one value per
// column, converted to the column's type as a single result is (a string
// through the type's input function). The rows are materialized at once
// (PostgreSQL's materialize mode), so return a bounded number.
type Rows struct {
	Rows [][]any
}

// rowsMarker starts a set's encoding (never a parameter kind).
const rowsMarker = 0xFF

func encodeRows(r Rows) ([]byte, error) {
	ncols := 0
	if len(r.Rows) > 0 {
		ncols = len(r.Rows[0])
	}
	buf := []byte{rowsMarker}
	buf = binary.LittleEndian.AppendUint32(buf, uint32(ncols))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(r.Rows)))
	for i, row := range r.Rows {
		if len(row) != ncols {
			return nil, fmt.Errorf("fmgr: row %d has %d values, row 0 has %d", i, len(row), ncols)
		}
		b, err := wire.EncodeParams(row)
		if err != nil {
			return nil, fmt.Errorf("fmgr: row %d: %w", i, err)
		}
		buf = append(buf, b...)
	}
	return buf, nil
}

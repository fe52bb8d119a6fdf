// Package spi runs SQL inside a pggo background worker through PostgreSQL's
// Server Programming Interface: no connection, no network, the statement runs
// in the worker's own backend.
//
// Calls work inside bgworker.Transaction, on the worker's own goroutine:
//
//	err := bgworker.Transaction(func() error {
//		var n int64
//		if err := spi.QueryRow("SELECT count(*) FROM jobs WHERE state = $1", "new").Scan(&n); err != nil {
//			return err
//		}
//		_, err := spi.Exec("INSERT INTO stats(at, pending) VALUES (now(), $1)", n)
//		return err
//	})
//
// Arguments are always bound as parameters ($1, $2, ...), never spliced into
// the SQL text. Go nil is NULL; int, int32, int64, float64, bool, string and
// []byte (and pointers to them) map to int8, int4, int8, float8, bool,
// text-or-inferred and bytea. A string parameter takes whatever type
// PostgreSQL infers for it, so "42" can feed an integer column. A time.Time
// takes the type the statement gives it: timestamptz gets its instant,
// timestamp its wall clock in its own Location, date that wall clock's day,
// whatever the server's TimeZone (write $1::timestamptz where nothing else
// gives the type).
//
// A Go SQL function (package fmgr) may use spi too, also when a worker's own
// statement calls it: its statements run in the caller's transaction and
// snapshot (read-only in a STABLE or IMMUTABLE function). There an error
// cannot be recovered from: once a statement failed, further calls fail and
// PostgreSQL raises the error when the function returns; Savepoint returns
// an error with SQLSTATE 0A000. Scan accepts the same types, pointers to pointers for NULL
// (**string), sql.Scanner (sql.NullString, ...), and *any.
//
// A failed statement returns a *pggo.Error with its SQLSTATE; the
// transaction is then rolled back, and further statements in it fail with
// SQLSTATE 25P02 until Transaction returns.
package spi

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/pggo/pggo/internal/pg"
	"github.com/pggo/pggo/internal/wire"
)

// ErrNoRows is returned by Row.Scan when the query returned no row. It is
// database/sql's ErrNoRows, so code written for database/sql recognizes it.
var ErrNoRows = sql.ErrNoRows

// Exec runs a statement and returns the number of rows it processed
// (inserted, updated, deleted or returned). A statement run more than once
// is planned once (see SetPlanCacheSize); NoCache as the first argument
// opts out.
func Exec(sql string, args ...any) (int64, error) {
	args, useCache := withoutCache(args)
	params, err := encode(args)
	if err != nil {
		return 0, err
	}
	plan, err := cachedPlan(sql, params, len(args), useCache)
	if err != nil {
		return 0, err
	}
	if plan != nil {
		plans.enter()
		_, n, err := pg.ExecPlan(plan, params, len(args), -1) // no rows wanted: none packed
		plans.leave()
		return int64(n), err
	}
	_, n, err := pg.Exec(sql, params, len(args), -1)
	return int64(n), err
}

// Query runs a statement that returns rows. Rows are streamed through a
// cursor, a batch at a time, so a large result needs little memory; Close
// (or reading to the end) releases the cursor, and a result that fits the
// first batch has none left open. Rows must be read inside the transaction
// (and savepoint) that opened them. A statement that cannot be a cursor
// (several statements, a utility command) runs to completion first. Plans
// are cached as for Exec; NoCache as the first argument opts out.
func Query(sql string, args ...any) (*Rows, error) {
	args, useCache := withoutCache(args)
	params, err := encode(args)
	if err != nil {
		return nil, err
	}
	plan, err := cachedPlan(sql, params, len(args), useCache)
	if err != nil {
		return nil, err
	}
	if plan != nil {
		plans.enter()
		defer plans.leave()
	}
	return openRows(plan, sql, params, len(args))
}

// QueryRow runs a statement expected to return at most one row; errors are
// deferred to Row.Scan. It needs no cursor: a single SELECT runs only as
// far as its first row (as PL/pgSQL's SELECT INTO does), any other
// statement (INSERT ... RETURNING) runs to completion. Plans are cached as
// for Exec; NoCache as the first argument opts out.
func QueryRow(sql string, args ...any) *Row {
	args, useCache := withoutCache(args)
	params, err := encode(args)
	if err != nil {
		return &Row{err: err}
	}
	plan, err := cachedPlan(sql, params, len(args), useCache)
	if err != nil {
		return &Row{err: err}
	}
	if plan != nil {
		plans.enter()
		defer plans.leave()
	}
	return queryRow(plan, sql, params, len(args))
}

// queryRow runs plan (or sql) for its first row.
func queryRow(plan *pg.Plan, sql string, params []byte, nparams int) *Row {
	buf, err := pg.QueryRow(plan, sql, params, nparams)
	if err != nil {
		return &Row{err: err}
	}
	res, err := wire.DecodeResult(buf)
	if err != nil {
		return &Row{err: fmt.Errorf("spi: %w", err)}
	}
	row := &Row{one: Rows{res: res, row: -1}}
	row.rows = &row.one // one allocation for both
	return row
}

// Rows is the result of Query. Iterate with Next and Scan.
type Rows struct {
	res    *wire.Result
	row    int
	vals   []wire.Value
	err    error
	closed bool
	portal string // the cursor still holding rows; "" when none
	more   bool   // the cursor may hold rows beyond this batch
}

// Next advances to the next row; it returns false after the last one or on
// an error (see Err).
func (r *Rows) Next() bool {
	if r.closed || r.err != nil {
		return false
	}
	r.row++
	if r.row >= r.res.NumRows {
		// A batch is bounded by bytes too, so a short one is not the end:
		// the loader says whether the cursor is exhausted.
		if r.portal == "" || !r.more {
			r.Close()
			return false
		}
		buf, more, err := pg.Fetch(r.portal, batchRows)
		if err == nil {
			var res *wire.Result
			if res, err = wire.DecodeResult(buf); err == nil {
				r.res, r.row, r.more = res, 0, more
			}
		}
		if err != nil {
			r.err = err
			r.Close()
			return false
		}
		if r.res.NumRows == 0 {
			r.Close()
			return false
		}
	}
	r.vals = r.vals[:0] // decoded on demand: Scan reads the buffer directly
	return true
}

// values decodes the current row once, for Values and DriverValues.
func (r *Rows) values() []wire.Value {
	if len(r.vals) == 0 && len(r.res.Columns) > 0 {
		r.vals = r.res.Row(r.row, r.vals[:0])
	}
	return r.vals
}

// Scan copies the current row's columns into dest, one per column.
func (r *Rows) Scan(dest ...any) error {
	if r.closed || r.row < 0 || r.row >= r.res.NumRows {
		return errors.New("spi: Scan called without a current row (call Next first)")
	}
	if len(dest) != len(r.res.Columns) {
		return fmt.Errorf("spi: Scan got %d destinations for %d columns", len(dest), len(r.res.Columns))
	}
	return r.res.Scan(r.row, dest)
}

// Values returns the current row's columns as natural Go values (nil for NULL).
func (r *Rows) Values() ([]any, error) {
	if r.closed || r.row < 0 || r.row >= r.res.NumRows {
		return nil, errors.New("spi: Values called without a current row (call Next first)")
	}
	vals := r.values()
	out := make([]any, len(vals))
	for i, v := range vals {
		n, err := v.Natural()
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// Columns returns the result's column names.
func (r *Rows) Columns() []string {
	names := make([]string, len(r.res.Columns))
	for i, c := range r.res.Columns {
		names[i] = c.Name
	}
	return names
}

// Err returns the error met while iterating, if any.
func (r *Rows) Err() error { return r.err }

// Close releases the rows and their cursor. It is safe to call more than once.
func (r *Rows) Close() {
	if r.portal != "" {
		pg.CloseCursor(r.portal)
		r.portal = ""
	}
	r.closed = true
	r.vals = nil
}

// Row is the result of QueryRow.
type Row struct {
	rows *Rows
	err  error
	one  Rows // QueryRow's rows, allocated with the Row
}

// Scan copies the first row into dest, or returns ErrNoRows.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		return ErrNoRows
	}
	return r.rows.Scan(dest...)
}

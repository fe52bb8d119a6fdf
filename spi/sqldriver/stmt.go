package sqldriver

import (
	"container/list"
	"context"
	"database/sql/driver"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/spi"
)

// stmt is a prepared statement: a plan kept by spi until Close.
type stmt struct {
	s     *spi.Stmt
	types []pggo.Oid // the parameter types PostgreSQL settled, for convertArgs
}

var (
	_ driver.Stmt             = (*stmt)(nil)
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

// Close frees the plan. database/sql may close a statement from another
// goroutine (when it discards a connection); the plan is then freed at the
// driver's next call on the worker's goroutine.
func (s *stmt) Close() error {
	if onWorkerThread() {
		return s.s.Close()
	}
	later(func() { s.s.Close() })
	return nil
}

// NumInput lets database/sql check the number of arguments before the call.
func (s *stmt) NumInput() int { return len(s.types) }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), valuesToNamed(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), valuesToNamed(args))
}

func (s *stmt) ExecContext(ctx context.Context, nargs []driver.NamedValue) (driver.Result, error) {
	if err := enter(ctx); err != nil {
		return nil, err
	}
	return s.exec(nargs)
}

func (s *stmt) QueryContext(ctx context.Context, nargs []driver.NamedValue) (driver.Rows, error) {
	if err := enter(ctx); err != nil {
		return nil, err
	}
	return s.query(nargs)
}

func (s *stmt) exec(nargs []driver.NamedValue) (driver.Result, error) {
	args, err := convertArgs(s.types, namedArgs(nargs))
	if err != nil {
		return nil, err
	}
	n, err := s.s.Exec(args...)
	if err != nil {
		return nil, err
	}
	return driver.RowsAffected(n), nil
}

func (s *stmt) query(nargs []driver.NamedValue) (driver.Rows, error) {
	args, err := convertArgs(s.types, namedArgs(nargs))
	if err != nil {
		return nil, err
	}
	r, err := s.s.Query(args...)
	if err != nil {
		return nil, err
	}
	return newRows(r), nil
}

func valuesToNamed(args []driver.Value) []driver.NamedValue {
	nargs := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nargs[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nargs
}

// stmtCacheSize bounds the plans the statement cache keeps. Each is a few
// kilobytes to tens of kilobytes of the worker's memory.
const stmtCacheSize = 256

// stmtCache holds the plans of statements run with arguments through
// ExecContext and QueryContext, most recently used first, as pgx's
// statement cache does: repeating a statement skips parse analysis and
// planning, and the parameter types come from the statement, not from the
// Go values. Only the worker's goroutine uses it (enter checks).
var stmtCache struct {
	byQuery map[string]*list.Element // of *stmt
	lru     list.List
}

func cachedStmt(query string) (*stmt, error) {
	if e, ok := stmtCache.byQuery[query]; ok {
		stmtCache.lru.MoveToFront(e)
		return e.Value.(*cacheEntry).stmt, nil
	}
	s, err := spi.Prepare(query)
	if err != nil {
		return nil, err
	}
	st := &stmt{s: s, types: s.ParamTypes()}
	if stmtCache.byQuery == nil {
		stmtCache.byQuery = make(map[string]*list.Element)
	}
	stmtCache.byQuery[query] = stmtCache.lru.PushFront(&cacheEntry{query, st})
	if stmtCache.lru.Len() > stmtCacheSize {
		old := stmtCache.lru.Remove(stmtCache.lru.Back()).(*cacheEntry)
		delete(stmtCache.byQuery, old.query)
		// A cursor still reading from the plan holds its own reference to it.
		old.stmt.s.Close()
	}
	return st, nil
}

type cacheEntry struct {
	query string
	stmt  *stmt
}

// convertArgs fits Go values to the parameter types of a plan. spi binds an
// integer only to integer types, a float only to float types, a time.Time
// only to timestamps and []byte only to bytea; a client driver such as pgx
// converts a Go value to whatever type the statement gives the parameter.
// Values that do not fit as they are go as their text, which PostgreSQL's
// input function of that type parses: 100.5 into numeric, a time.Time into
// date (its own calendar day), []byte into json. Other values (strings,
// slices, pgtype values, ...) are left to spi, which sends them as text.
func convertArgs(types []pggo.Oid, args []any) ([]any, error) {
	if len(args) != len(types) {
		return nil, fmt.Errorf("pggo-spi: the statement takes %d parameters, got %d arguments", len(types), len(args))
	}
	for i, a := range args {
		v, err := basicValue(a, i+1)
		if err != nil {
			return nil, err
		}
		args[i] = fitValue(types[i], v)
	}
	return args, nil
}

// PostgreSQL type OIDs convertArgs and the column type tables need; they are
// fixed in PostgreSQL's catalog (pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidJSON        = 114
	oidXML         = 142
	oidFloat4      = 700
	oidFloat8      = 701
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidNumeric     = 1700
	oidJSONB       = 3802
)

// maxValuerDepth bounds driver.Valuer results that are Valuers themselves,
// as spi does, so that a Value method returning its receiver is an error.
const maxValuerDepth = 8

var timeType = reflect.TypeFor[time.Time]()

// basicValue reduces a to nil, int64, float64, float32, bool, string, []byte
// or time.Time when it is one of those underneath (a pointer, a named type,
// a driver.Valuer); anything else comes back as it is. pos is the 1-based
// parameter position, for errors.
func basicValue(a any, pos int) (any, error) {
	for depth := 0; ; depth++ {
		switch v := a.(type) {
		case nil, int64, float64, float32, bool, string, []byte, time.Time:
			return a, nil
		case time.Duration:
			return a, nil // an interval for spi, not the int64 it is made of
		case driver.Valuer:
			if depth >= maxValuerDepth {
				return nil, fmt.Errorf("pggo-spi: parameter $%d: driver.Valuer %T: Value results nest more than %d deep", pos, v, maxValuerDepth)
			}
			// As database/sql does: a nil pointer whose element type has a
			// value-receiver Value method is NULL, not a panic.
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
				return nil, nil
			}
			x, err := v.Value()
			if err != nil {
				return nil, fmt.Errorf("pggo-spi: parameter $%d: %T.Value: %w", pos, v, err)
			}
			a = x
			continue
		}
		rv := reflect.ValueOf(a)
		switch rv.Kind() {
		case reflect.Pointer:
			if rv.IsNil() {
				return nil, nil
			}
			if depth >= maxValuerDepth {
				return a, nil
			}
			a = rv.Elem().Interface()
			continue
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return rv.Int(), nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			u := rv.Uint()
			if u > math.MaxInt64 {
				return nil, fmt.Errorf("pggo-spi: parameter $%d: %T value %d is out of range for bigint", pos, a, u)
			}
			return int64(u), nil
		case reflect.Float32:
			return float32(rv.Float()), nil
		case reflect.Float64:
			return rv.Float(), nil
		case reflect.Bool:
			return rv.Bool(), nil
		case reflect.String:
			return rv.String(), nil
		case reflect.Slice:
			if rv.Type().Elem().Kind() == reflect.Uint8 {
				if rv.IsNil() {
					return nil, nil
				}
				return rv.Bytes(), nil
			}
		case reflect.Struct:
			if rv.Type().ConvertibleTo(timeType) {
				return rv.Convert(timeType).Interface(), nil
			}
		}
		return a, nil
	}
}

// fitValue returns v, or its text when spi could not bind it to type oid.
func fitValue(oid pggo.Oid, v any) any {
	switch x := v.(type) {
	case int64:
		if oid == oidInt8 || oid == oidInt4 || oid == oidInt2 {
			return x
		}
		return strconv.FormatInt(x, 10)
	case float64:
		if oid == oidFloat8 || oid == oidFloat4 {
			return x
		}
		return formatFloat(x, 64)
	case float32:
		if oid == oidFloat8 || oid == oidFloat4 {
			return x
		}
		return formatFloat(float64(x), 32)
	case bool:
		if oid == oidBool {
			return x
		}
		return strconv.FormatBool(x)
	case time.Time:
		switch oid {
		case oidTimestampTZ, oidTimestamp:
			return x
		case oidDate:
			return formatDate(x)
		}
		// time and timetz read the clock from this, text keeps it all.
		return x.Format("2006-01-02 15:04:05.999999999-07:00")
	case []byte:
		if oid == oidBytea {
			return x
		}
		return string(x) // json, jsonb, text: the bytes are the text
	}
	return v
}

// formatFloat spells f as PostgreSQL's input functions read it, infinities
// and NaN included.
func formatFloat(f float64, bits int) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// formatDate is t's calendar day in t's own location, as pgx encodes a
// time.Time into a date; year 0 and before are 1 BC and before.
func formatDate(t time.Time) string {
	y, m, d := t.Date()
	if y <= 0 {
		return fmt.Sprintf("%04d-%02d-%02d BC", 1-y, int(m), d)
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, int(m), d)
}

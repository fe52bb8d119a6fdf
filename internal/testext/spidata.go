package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

// The "data" scenario: types, prepared plans, streaming, errors, savepoints.
func init() {
	bgworker.RegisterFunction("testext_data", dataMain)
}

func dataMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	checks := []struct {
		key   string
		fn    func() (string, error)
		ownTx bool // runs its own transactions
	}{
		{"types", roundTrips, false},
		{"prepared", preparedPlans, false},
		{"plan reuse", usePlan, true},
		{"errors", errorCodes, false},
		{"savepoints", savepoints, false},
		{"streaming", streaming, false},
		{"throughput", throughput, false},
	}
	for _, c := range checks {
		var out string
		var err error
		if c.ownTx {
			out, err = c.fn()
		} else {
			err = bgworker.Transaction(func() (err error) {
				out, err = c.fn()
				return err
			})
		}
		if err != nil {
			out = "FAILED: " + err.Error()
		}
		record(c.key, out)
	}
	return idle()
}

// roundTrips sends each value as a parameter, reads it back and compares.
func roundTrips() (string, error) {
	big := strings.Repeat("9", 1000) + "." + strings.Repeat("1", 5)
	ts := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	cases := []struct {
		sql  string
		in   any
		want any // nil: same as in
	}{
		{"SELECT $1::bool", true, nil},
		{"SELECT $1::bool", false, nil},
		{"SELECT $1::int2", int16(math.MinInt16), nil},
		{"SELECT $1::int2", int16(math.MaxInt16), nil},
		{"SELECT $1::int4", int32(math.MinInt32), nil},
		{"SELECT $1::int4", int32(math.MaxInt32), nil},
		{"SELECT $1::int8", int64(math.MinInt64), nil},
		{"SELECT $1::int8", int64(math.MaxInt64), nil},
		{"SELECT $1::float8", math.Inf(1), nil},
		{"SELECT $1::float8", math.Inf(-1), nil},
		{"SELECT $1::float8", math.SmallestNonzeroFloat64, nil},
		{"SELECT $1::float4", float32(3.25), nil},
		{"SELECT $1::text", "", nil},
		{"SELECT $1::text", "héllo, 世界 🐘", nil},
		{"SELECT $1::varchar", "varchar", nil},
		{"SELECT $1::bytea", []byte{0, 1, 2, 0, 255}, nil},
		{"SELECT $1::bytea", []byte{}, nil},
		{"SELECT $1::timestamptz", ts, nil},
		{"SELECT $1::timestamp", ts, nil},
		{"SELECT $1::date", time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), nil},
		{"SELECT $1::numeric::text", big, nil},
		{"SELECT $1::numeric", "12.50", "12.50"},
		{"SELECT $1::uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", nil},
		{"SELECT $1::jsonb", `{"a": [1, 2]}`, nil},
		{"SELECT $1::json", `{"b":true}`, nil},
		{"SELECT $1::interval", "1 day 02:03:04", nil},
		{"SELECT $1::int4[]", "{1,2,3}", nil},
		{"SELECT ROW(1, 'x')::text", nil, "(1,x)"},
		{"SELECT 'infinity'::timestamptz", nil, "infinity"},
		{"SELECT 'NaN'::float8", nil, "NaN"},
		{"SELECT $1::int8", 42, int64(42)},       // Go int
		{"SELECT $1::int4 + 1", "41", int32(42)}, // string inferred as int4
		{"SELECT $1::text IS NULL", nil, true},   // NULL parameter
		{"SELECT NULL::int4", nil, nil},          // NULL into *any
		{"SELECT $1::name", "a_name", nil},
		// The long tail, through pgtype: arrays, uuid, jsonb, interval, numeric.
		{"SELECT $1::int8[]", []int64{1, math.MaxInt64, -3}, nil},
		{"SELECT '{1,NULL,3}'::int4[]", nil, []any{int32(1), nil, int32(3)}},
		{"SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", nil,
			[16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}},
		{`SELECT '{"a": [1, "x"]}'::jsonb`, nil, map[string]any{"a": []any{float64(1), "x"}}},
		{"SELECT $1::interval::text", 90 * time.Minute, "01:30:00"},
		{"SELECT $1::text[]", []string{"a", "", "é"}, nil},
		{"SELECT $1::float8[]", []float64{0.5, math.Inf(1)}, nil},
		{"SELECT $1::char(3)", "ab", "ab "},
	}
	var bad []string
	for i, c := range cases {
		var args []any
		if strings.Contains(c.sql, "$1") {
			args = []any{c.in}
		}
		want := c.want
		if want == nil && c.in != nil && strings.Contains(c.sql, "$1") && !strings.Contains(c.sql, "IS NULL") {
			want = c.in
		}
		var got any
		if want != nil && reflect.TypeOf(want).Kind() != reflect.Interface {
			// Scan into a pointer of the wanted Go type.
			dst := reflect.New(reflect.TypeOf(want))
			if err := spi.QueryRow(c.sql, args...).Scan(dst.Interface()); err != nil {
				bad = append(bad, fmt.Sprintf("#%d %s: %v", i, c.sql, err))
				continue
			}
			got = dst.Elem().Interface()
		} else if err := spi.QueryRow(c.sql, args...).Scan(&got); err != nil {
			bad = append(bad, fmt.Sprintf("#%d %s: %v", i, c.sql, err))
			continue
		}
		if !equal(got, want) {
			bad = append(bad, fmt.Sprintf("#%d %s: got %#v, want %#v", i, c.sql, got, want))
		}
		// NULL of the same type into a **T / *any gives nil.
		if strings.Contains(c.sql, "$1::") && !strings.Contains(c.sql, "IS NULL") {
			var null any = "not nil"
			if err := spi.QueryRow(c.sql, nil).Scan(&null); err != nil || null != nil {
				bad = append(bad, fmt.Sprintf("#%d %s with NULL: %v %v", i, c.sql, null, err))
			}
		}
	}
	if len(bad) > 0 {
		return "", errors.New(strings.Join(bad, "; "))
	}
	return fmt.Sprintf("ok %d", len(cases)), nil
}

func equal(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	if ba, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && bytes.Equal(ba, bb)
	}
	if fa, ok := a.(float64); ok && math.IsNaN(fa) {
		fb, ok := b.(float64)
		return ok && math.IsNaN(fb)
	}
	return reflect.DeepEqual(a, b)
}

const planSQL = "SELECT $1::int8 * 2 /* testext prepared */"

var kept *spi.Stmt

// preparedPlans prepares a plan; usePlan then uses it in 1000 later
// transactions, closes it and checks its memory context is gone.
func preparedPlans() (string, error) {
	var err error
	if kept, err = spi.Prepare(planSQL); err != nil {
		return "", err
	}
	return "prepared", nil
}

// usePlan runs in its own transactions after preparedPlans committed.
func usePlan() (string, error) {
	sum := int64(0)
	for i := 0; i < 1000; i++ {
		err := bgworker.Transaction(func() error {
			var v int64
			if err := kept.QueryRow(i).Scan(&v); err != nil {
				return err
			}
			sum += v
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	var before, after int
	count := "SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'CachedPlanSource' AND ident = $1"
	err := bgworker.Transaction(func() error {
		if err := spi.QueryRow(count, planSQL).Scan(&before); err != nil {
			return err
		}
		if err := kept.Close(); err != nil {
			return err
		}
		if _, err := kept.Exec(1); !errors.Is(err, spi.ErrStmtClosed) {
			return fmt.Errorf("Exec after Close: %v", err)
		}
		return spi.QueryRow(count, planSQL).Scan(&after)
	})
	return fmt.Sprintf("sum=%d contexts before=%d after=%d", sum, before, after), err
}

func errorCodes() (string, error) {
	if _, err := spi.Exec("CREATE TABLE err_rows(v int PRIMARY KEY); INSERT INTO err_rows VALUES (1)"); err != nil {
		return "", err
	}
	var out []string
	for _, q := range []string{
		"INSERT INTO err_rows VALUES (1)",
		"SELECT 1/0",
		"SELECT * FROM pg_class WHERE relname = = 'x'",
	} {
		err := spi.Savepoint(func() error { _, err := spi.Exec(q); return err })
		var pe *pggo.Error
		if !errors.As(err, &pe) {
			return "", fmt.Errorf("%s: want *pggo.Error, got %v", q, err)
		}
		out = append(out, fmt.Sprintf("%s@%d", pe.SQLState, pe.Position))
	}
	// More parameters used than arguments given: PostgreSQL's "no value
	// found for parameter 2".
	err := spi.Savepoint(func() error { _, err := spi.Exec("SELECT $1::int4 + $2::int4", 1); return err })
	var pe *pggo.Error
	if !errors.As(err, &pe) {
		return "", fmt.Errorf("$2 without an argument: want *pggo.Error, got %v", err)
	}
	out = append(out, pe.SQLState)
	return strings.Join(out, " "), nil
}

func savepoints() (string, error) {
	if _, err := spi.Exec("CREATE TABLE sp(v text)"); err != nil {
		return "", err
	}
	spi.Exec("INSERT INTO sp VALUES ('a')")
	err := spi.Savepoint(func() error {
		spi.Exec("INSERT INTO sp VALUES ('b')")
		if _, err := spi.Exec("INSERT INTO sp VALUES (1/0)"); err == nil {
			return errors.New("1/0 did not fail")
		}
		_, err := spi.Exec("INSERT INTO sp VALUES ('ignored')")
		return fmt.Errorf("after the failure: %w", err)
	})
	inner := spi.Savepoint(func() error {
		spi.Exec("INSERT INTO sp VALUES ('c')")
		return spi.Savepoint(func() error {
			spi.Exec("INSERT INTO sp VALUES ('d')")
			panic("nested panic")
		})
	})
	spi.Exec("INSERT INTO sp VALUES ('e')")
	var got string
	if err := spi.QueryRow("SELECT string_agg(v, ',' ORDER BY v) FROM sp").Scan(&got); err != nil {
		return "", err
	}
	return fmt.Sprintf("rows=%s first=%v inner=%v", got, err, inner), nil
}

// streaming reads 5M rows through a cursor and reports the peak RSS growth.
func streaming() (string, error) {
	before := vmHWM()
	rows, err := spi.Query("SELECT g, 'row number ' || g FROM generate_series(1, 5000000) g")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	n, sum := 0, int64(0)
	start := time.Now()
	for rows.Next() {
		var g int64
		var s string
		if err := rows.Scan(&g, &s); err != nil {
			return "", err
		}
		n++
		sum += g
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	took := time.Since(start)
	return fmt.Sprintf("rows=%d sum=%d peak_growth_kb=%d rows_per_s=%.0f", n, sum, vmHWM()-before, float64(n)/took.Seconds()), nil
}

func vmHWM() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// throughput times SELECT 1 through a prepared plan and single-row INSERTs.
func throughput() (string, error) {
	const n = 100000
	stmt, err := spi.Prepare("SELECT 1")
	if err != nil {
		return "", err
	}
	defer stmt.Close()
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := stmt.Exec(); err != nil {
			return "", err
		}
	}
	sel := float64(n) / time.Since(start).Seconds()
	if _, err := spi.Exec("CREATE TABLE tp(i int8, s text)"); err != nil {
		return "", err
	}
	ins, err := spi.Prepare("INSERT INTO tp VALUES ($1, $2)")
	if err != nil {
		return "", err
	}
	defer ins.Close()
	start = time.Now()
	for i := 0; i < n; i++ {
		if _, err := ins.Exec(i, "x"); err != nil {
			return "", err
		}
	}
	insPS := float64(n) / time.Since(start).Seconds()
	start = time.Now()
	for i := 0; i < n/10; i++ {
		if _, err := spi.Exec("SELECT 1"); err != nil {
			return "", err
		}
	}
	adhoc := float64(n/10) / time.Since(start).Seconds()
	return fmt.Sprintf("select1_prepared=%.0f/s insert_prepared=%.0f/s select1_exec=%.0f/s", sel, insPS, adhoc), nil
}

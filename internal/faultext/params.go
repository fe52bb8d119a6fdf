package main

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

// Type OIDs the prepared cases declare (fixed in PostgreSQL's catalog).
const (
	oidInt2    pggo.Oid = 21
	oidInt4    pggo.Oid = 23
	oidText    pggo.Oid = 25
	oidFloat4  pggo.Oid = 700
	oidTextArr pggo.Oid = 1009
	oidDate    pggo.Oid = 1082
	oidNumeric pggo.Oid = 1700
)

// paramCase sends one bad (or borderline) parameter; run returns the value
// PostgreSQL stored or computed, as text.
type paramCase struct {
	name string
	run  func() (string, error)
}

// execRet runs sql with args through spi.Exec's path (types from the Go
// values) and returns its one text column.
func execRet(sql string, args ...any) (string, error) {
	var s *string
	if err := spi.QueryRow(sql, args...).Scan(&s); err != nil {
		return "", err
	}
	if s == nil {
		return "NULL", nil
	}
	return *s, nil
}

// prepRet is execRet through spi.Prepare with declared parameter types.
func prepRet(sql string, types []pggo.Oid, args ...any) (string, error) {
	st, err := spi.Prepare(sql, types...)
	if err != nil {
		return "", err
	}
	defer st.Close()
	var s *string
	if err := st.QueryRow(args...).Scan(&s); err != nil {
		return "", err
	}
	if s == nil {
		return "NULL", nil
	}
	return *s, nil
}

func paramCases() []paramCase {
	huge := strings.Repeat("x", envInt("PGGO_FAULT_HUGE", 16<<20))
	big := "a\x00" + strings.Repeat("x", 1<<20) // a NUL, then a megabyte
	ins := func(col string) string {
		return fmt.Sprintf("INSERT INTO fault_params(%s) VALUES ($1) RETURNING %s::text", col, col)
	}
	cases := []paramCase{
		{"int2 overflow (Exec)", func() (string, error) { return execRet(ins("i2"), int64(70000)) }},
		{"int2 overflow (Prepare int2)", func() (string, error) { return prepRet(ins("i2"), []pggo.Oid{oidInt2}, int64(70000)) }},
		{"int2 underflow (Prepare int2)", func() (string, error) { return prepRet(ins("i2"), []pggo.Oid{oidInt2}, int64(-40000)) }},
		{"int2 from int8 in range", func() (string, error) { return execRet(ins("i2"), int8(-128)) }},
		{"int4 overflow (Exec)", func() (string, error) { return execRet(ins("i4"), int64(1)<<40) }},
		{"int4 overflow (Prepare int4)", func() (string, error) { return prepRet(ins("i4"), []pggo.Oid{oidInt4}, int64(1)<<40) }},
		{"uint64 above int8", func() (string, error) { return execRet(ins("i8"), uint64(math.MaxUint64)) }},
		{"real overflow (Exec)", func() (string, error) { return execRet(ins("r"), 1e300) }},
		{"real overflow (Prepare real)", func() (string, error) { return prepRet(ins("r"), []pggo.Oid{oidFloat4}, 1e300) }},
		{"real underflow (Prepare real)", func() (string, error) { return prepRet(ins("r"), []pggo.Oid{oidFloat4}, 1e-300) }},
		{"numeric overflow (Exec string)", func() (string, error) { return execRet(ins("n"), "1e10") }},
		{"numeric overflow (Prepare numeric)", func() (string, error) {
			return prepRet(ins("n"), []pggo.Oid{oidNumeric}, 1e10)
		}},
		{"float into int4 (Prepare int4)", func() (string, error) { return prepRet(ins("i4"), []pggo.Oid{oidInt4}, 1e20) }},
		{"time into int4 (Prepare int4)", func() (string, error) {
			return prepRet(ins("i4"), []pggo.Oid{oidInt4}, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
		}},
		{"bytea into int4 (Prepare int4)", func() (string, error) { return prepRet(ins("i4"), []pggo.Oid{oidInt4}, []byte{1}) }},
		{"NUL in string (Exec)", func() (string, error) { return execRet(ins("t"), "a\x00b") }},
		{"NUL in string (Prepare text)", func() (string, error) { return prepRet(ins("t"), []pggo.Oid{oidText}, "a\x00b") }},
		{"NUL in bytea", func() (string, error) {
			return execRet("INSERT INTO fault_params(b) VALUES ($1) RETURNING length(b)::text", []byte("a\x00b"))
		}},
		{"invalid UTF-8 (Exec)", func() (string, error) { return execRet(ins("t"), "\xff\xfe") }},
		{"invalid UTF-8 (Prepare text)", func() (string, error) { return prepRet(ins("t"), []pggo.Oid{oidText}, "ok\xff") }},
		{"truncated UTF-8", func() (string, error) { return execRet(ins("t"), "é"[:1]) }},
		{"invalid UTF-8 in text[]", func() (string, error) { return execRet(ins("ta"), []string{"\xff"}) }},
		{"time after 294276 AD", func() (string, error) {
			return execRet(ins("ts"), time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC))
		}},
		{"time before 4714 BC", func() (string, error) {
			return execRet(ins("ts"), time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC))
		}},
		{"last date of timestamp range (Prepare date)", func() (string, error) {
			return prepRet(ins("d"), []pggo.Oid{oidDate}, time.Date(294276, 12, 31, 0, 0, 0, 0, time.UTC))
		}},
		{"unsupported struct", func() (string, error) { return execRet(ins("t"), struct{ A int }{1}) }},
		{"unsupported chan", func() (string, error) { return execRet(ins("t"), make(chan int)) }},
		{"unsupported func", func() (string, error) { return execRet(ins("t"), func() {}) }},
		{"unsupported complex128", func() (string, error) { return execRet(ins("t"), complex(1, 2)) }},
		{"map into jsonb", func() (string, error) { return execRet(ins("j"), map[string]any{"a": 1}) }},
		{"too few arguments", func() (string, error) { return execRet("SELECT ($1::int + $2::int)::text", 1) }},
		{"too many arguments (Prepare int4)", func() (string, error) {
			return prepRet("SELECT $1::text", []pggo.Oid{oidInt4}, 1, 2)
		}},
		{"unknown type OID (Prepare)", func() (string, error) { return prepRet("SELECT $1::text", []pggo.Oid{4000000000}, 1) }},
		{"huge string (Exec)", func() (string, error) { return execRet("SELECT length($1)::text", huge) }},
		{"huge string (Prepare text)", func() (string, error) {
			return prepRet("SELECT length($1)::text", []pggo.Oid{oidText}, huge)
		}},
	}
	if envInt("PGGO_FAULT_SOAK", 0) == 1 {
		cases = append(cases, paramCase{"string above 1 GB", func() (string, error) {
			return execRet("SELECT length($1)::text", strings.Repeat("g", 1<<30+1))
		}})
	}
	// Last: the cases reported to crash the server (issue 9), so that the
	// others have been recorded if they do.
	cases = append(cases,
		paramCase{"NUL escape into jsonb", func() (string, error) { return execRet(ins("j"), `{"a": "\u0000"}`) }},
		paramCase{"NUL in JSON text into jsonb", func() (string, error) { return execRet(ins("j"), "{\"a\": \"\x00\"}") }},
		paramCase{"NUL in pgtype.Text", func() (string, error) {
			return execRet(ins("t"), pgtype.Text{String: "a\x00b", Valid: true})
		}},
		paramCase{"NUL in text[] (Exec)", func() (string, error) { return execRet(ins("ta"), []string{big}) }},
	)
	// A crash costs the quick run some 10 s (the Go runtime's crash report
	// and PostgreSQL's recovery): the same value through Prepare only in
	// the soak run.
	if envInt("PGGO_FAULT_SOAK", 0) == 1 {
		cases = append(cases, paramCase{"NUL in text[] (Prepare text[])", func() (string, error) {
			return prepRet(ins("ta"), []pggo.Oid{oidTextArr}, []string{big})
		}})
	}
	return cases
}

// outcome renders a case's result for the test: "ok VALUE",
// "error SQLSTATE message" for a *pggo.Error, "go error: ..." otherwise.
func outcome(v string, err error) string {
	var pe *pggo.Error
	switch {
	case errors.As(err, &pe):
		return "error " + pe.SQLState + " " + pe.Message
	case err != nil:
		return "go error: " + err.Error()
	}
	if len(v) > 200 {
		v = v[:200] + "..."
	}
	return "ok " + v
}

// paramsMain runs every case in its own transaction and records its outcome
// under its name, then records "after" from one more committed transaction
// (a lost commit would show there) and "done". Before each case it commits
// "started: NAME": restarted after a case crashed the server, it records
// that case as "crashed the server" and goes on with the next.
func paramsMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	seen := map[string]bool{}
	err := bgworker.Transaction(func() error {
		rows, err := spi.Query("SELECT key FROM fault_results WHERE worker = $1", bgworker.Name())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			seen[k] = true
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	cases := paramCases()
	for _, c := range cases {
		switch {
		case seen[c.name]:
			continue
		case seen["started: "+c.name]:
			record(c.name, "crashed the server")
			continue
		}
		// In the log too: if the server crashes, the log names the case.
		bgworker.Logf("faultext params: case %q", c.name)
		if err := record("started: "+c.name, ""); err != nil {
			return err
		}
		var v string
		err := bgworker.Transaction(func() (err error) {
			v, err = c.run()
			return err
		})
		if rerr := record(c.name, outcome(v, err)); rerr != nil {
			bgworker.Warning(fmt.Sprintf("faultext params: recording %q: %v", c.name, rerr))
		}
	}
	record("after", "committed")
	record("done", fmt.Sprint(len(cases)))
	return idle()
}

package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

// The "perf" scenario: the plan cache (DDL, search_path, savepoints,
// errors, eviction, opt-out), QueryRow without a cursor, small results
// without a cursor left open, and ExecBatch.
func init() {
	bgworker.RegisterFunction("testext_perf", perfMain)
}

func perfMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	checks := []struct {
		key string
		fn  func() (string, error)
	}{
		{"cache ddl", cacheDDL},
		{"cache search_path", cacheSearchPath},
		{"cache errors", cacheErrors},
		{"cache types", cacheTypes},
		{"cache eviction", cacheEviction},
		{"queryrow", queryRowSemantics},
		{"batch", batches},
	}
	for _, c := range checks {
		out, err := c.fn()
		if err != nil {
			out = "FAILED: " + err.Error()
		}
		record(c.key, out)
	}
	return idle()
}

// tx runs fn in its own transaction.
func tx(fn func() error) error { return bgworker.Transaction(fn) }

// cacheDDL reads a table through a cached plan, changes the table's
// definition in another transaction, and reads it again: PostgreSQL's plan
// cache must re-plan (new column, new type).
func cacheDDL() (string, error) {
	var out []string
	read := func() error {
		return tx(func() error {
			for i := 0; i < 3; i++ { // the second run keeps the plan, the third uses it
				rows, err := spi.Query("SELECT * FROM pc_ddl ORDER BY 1")
				if err != nil {
					return err
				}
				var vals []string
				for rows.Next() {
					v, err := rows.Values()
					if err != nil {
						rows.Close()
						return err
					}
					vals = append(vals, fmt.Sprint(v...))
				}
				rows.Close()
				if i == 2 {
					out = append(out, fmt.Sprintf("%s=%s", strings.Join(rows.Columns(), ","), strings.Join(vals, ";")))
				}
			}
			return nil
		})
	}
	err := tx(func() error {
		_, err := spi.Exec("CREATE TABLE pc_ddl(a int4); INSERT INTO pc_ddl VALUES (1), (2)")
		return err
	})
	if err != nil {
		return "", err
	}
	if err := read(); err != nil {
		return "", err
	}
	_, kept := spi.PlanCacheStats()
	if kept == 0 {
		return "", errors.New("nothing kept after three runs")
	}
	if err := tx(func() error {
		_, err := spi.Exec("ALTER TABLE pc_ddl ADD COLUMN b text DEFAULT 'x'; ALTER TABLE pc_ddl ALTER a TYPE text")
		return err
	}); err != nil {
		return "", err
	}
	if err := read(); err != nil {
		return "", err
	}
	// Parameters: an INSERT cached with an int argument, the column then
	// widened: the kept plan is re-planned with the same parameter type.
	err = tx(func() error {
		if _, err := spi.Exec("CREATE TABLE pc_ins(v int4)"); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			if _, err := spi.Exec("INSERT INTO pc_ins VALUES ($1)", i); err != nil {
				return err
			}
		}
		if _, err := spi.Exec("ALTER TABLE pc_ins ALTER v TYPE int8"); err != nil {
			return err
		}
		if _, err := spi.Exec("INSERT INTO pc_ins VALUES ($1)", int64(1)<<40); err != nil {
			return err
		}
		var sum int64
		if err := spi.QueryRow("SELECT sum(v) FROM pc_ins").Scan(&sum); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("sum=%d", sum))
		return nil
	})
	return strings.Join(out, " "), err
}

// cacheSearchPath runs one cached statement under two search_paths.
func cacheSearchPath() (string, error) {
	var got []string
	err := tx(func() error {
		_, err := spi.Exec(`CREATE SCHEMA sp1; CREATE SCHEMA sp2;
			CREATE TABLE sp1.t(v text); CREATE TABLE sp2.t(v text);
			INSERT INTO sp1.t VALUES ('one'); INSERT INTO sp2.t VALUES ('two')`)
		return err
	})
	if err != nil {
		return "", err
	}
	for _, path := range []string{"sp1", "sp2", "sp1"} {
		err := tx(func() error {
			if _, err := spi.Exec("SET search_path = " + path); err != nil {
				return err
			}
			for i := 0; i < 3; i++ {
				var v string
				if err := spi.QueryRow("SELECT v FROM t").Scan(&v); err != nil {
					return err
				}
				if i == 2 {
					got = append(got, v)
				}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	if err := tx(func() error { _, err := spi.Exec("RESET search_path"); return err }); err != nil {
		return "", err
	}
	return strings.Join(got, ","), nil
}

// cacheErrors: a cached plan survives a failed run in a savepoint and a
// rolled-back transaction; a plan kept in a savepoint that created its
// table fails cleanly once the savepoint is rolled back, and works again
// once the table exists.
func cacheErrors() (string, error) {
	var out []string
	const ins = "INSERT INTO pc_err VALUES ($1)"
	err := tx(func() error {
		if _, err := spi.Exec("CREATE TABLE pc_err(v int4 PRIMARY KEY)"); err != nil {
			return err
		}
		for i := 1; i <= 3; i++ {
			if _, err := spi.Exec(ins, i); err != nil {
				return err
			}
		}
		err := spi.Savepoint(func() error { _, err := spi.Exec(ins, 1); return err })
		out = append(out, "dup="+sqlstate(err))
		_, err = spi.Exec(ins, 4)
		return err
	})
	if err != nil {
		return "", err
	}
	// A transaction that fails: its statements are gone, the plan is not.
	err = tx(func() error {
		if _, err := spi.Exec(ins, 5); err != nil {
			return err
		}
		_, err := spi.Exec(ins, 5)
		return err
	})
	out = append(out, "tx="+sqlstate(err))
	err = tx(func() error {
		if _, err := spi.Exec(ins, 6); err != nil {
			return err
		}
		var n int64
		if err := spi.QueryRow("SELECT count(*) FROM pc_err").Scan(&n); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("rows=%d", n))
		// Kept inside a savepoint that is then rolled back with its table.
		const sel = "SELECT count(*) FROM pc_gone"
		spi.Savepoint(func() error {
			if _, err := spi.Exec("CREATE TABLE pc_gone(v int4)"); err != nil {
				return err
			}
			for i := 0; i < 3; i++ {
				var n int64
				if err := spi.QueryRow(sel).Scan(&n); err != nil {
					return err
				}
			}
			return errors.New("roll back")
		})
		err := spi.Savepoint(func() error {
			var n int64
			return spi.QueryRow(sel).Scan(&n)
		})
		out = append(out, "gone="+sqlstate(err))
		if _, err := spi.Exec("CREATE TABLE pc_gone(v int4); INSERT INTO pc_gone VALUES (1)"); err != nil {
			return err
		}
		if err := spi.QueryRow(sel).Scan(&n); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("back=%d", n))
		// More parameters used than given: the same error, cached or not.
		for i := 0; i < 3; i++ {
			err := spi.Savepoint(func() error { _, err := spi.Exec("SELECT $1::int4 + $2::int4", 1); return err })
			if i == 2 {
				out = append(out, "params="+sqlstate(err))
			}
		}
		return nil
	})
	return strings.Join(out, " "), err
}

func sqlstate(err error) string {
	var pe *pggo.Error
	if errors.As(err, &pe) {
		return pe.SQLState
	}
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// cacheTypes: values through a kept plan convert as through a one-shot
// plan (the time.Time rule, strings into inferred types, NULL).
func cacheTypes() (string, error) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	t := time.Date(2024, 7, 1, 1, 30, 0, 0, berlin) // 2024-06-30 23:30 UTC
	var out []string
	err = tx(func() error {
		for i := 0; i < 3; i++ {
			var tz, wall, day, n string
			var null *string
			if err := spi.QueryRow("SELECT extract(epoch FROM $1::timestamptz)::int8::text, $2::timestamp::text, $3::date::text, $4::int8 + 1, $5::text",
				t, t, t, "41", nil).Scan(&tz, &wall, &day, &n, &null); err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%s|%s|%s|%s|%v", tz, wall, day, n, null))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if out[0] != out[1] || out[1] != out[2] {
		return "", fmt.Errorf("cached runs differ: %q", out)
	}
	return out[0], nil
}

// cacheEviction: a small cache keeps at most its size, frees the plans of
// evicted statements (their CachedPlanSource contexts disappear), and
// NoCache keeps nothing.
func cacheEviction() (string, error) {
	defer spi.SetPlanCacheSize(spi.DefaultPlanCacheSize)
	count := func() (n int64, err error) {
		err = spi.QueryRow("SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'CachedPlanSource' AND ident ~ 'evict[m]e_'",
			spi.NoCache).Scan(&n)
		return n, err
	}
	var out []string
	err := tx(func() error {
		spi.SetPlanCacheSize(4)
		for i := 0; i < 10; i++ {
			for j := 0; j < 2; j++ {
				if _, err := spi.Exec(fmt.Sprintf("SELECT %d AS evictme_%d", i, i)); err != nil {
					return err
				}
			}
		}
		entries, kept := spi.PlanCacheStats()
		n, err := count()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("entries=%d kept=%d contexts=%d", entries, kept, n))
		spi.SetPlanCacheSize(0)
		entries, kept = spi.PlanCacheStats()
		if n, err = count(); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("off: entries=%d kept=%d contexts=%d", entries, kept, n))
		spi.SetPlanCacheSize(8)
		for j := 0; j < 3; j++ {
			if _, err := spi.Exec("SELECT 1 AS evictme_nocache", spi.NoCache); err != nil {
				return err
			}
		}
		entries, kept = spi.PlanCacheStats()
		if n, err = count(); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("nocache: entries=%d kept=%d contexts=%d", entries, kept, n))
		return nil
	})
	return strings.Join(out, "; "), err
}

// queryRowSemantics: QueryRow stops a SELECT at its first row, but runs an
// INSERT ... RETURNING (more rows than a batch) and a utility statement to
// completion; Query streams results larger than a batch.
func queryRowSemantics() (string, error) {
	var out []string
	err := tx(func() error {
		if _, err := spi.Exec("CREATE TABLE qr(v int8)"); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			var first int64
			if err := spi.QueryRow("INSERT INTO qr SELECT g FROM generate_series(1, 5000) g RETURNING v").Scan(&first); err != nil {
				return err
			}
			if i == 0 {
				out = append(out, fmt.Sprintf("returning first=%d", first))
			}
		}
		var n int64
		if err := spi.QueryRow("SELECT count(*) FROM qr").Scan(&n); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("inserted=%d", n))
		// A SELECT stops at its first row: nextval runs once, not 15000 times.
		var g int64
		if _, err := spi.Exec("CREATE SEQUENCE qr_seq"); err != nil {
			return err
		}
		if err := spi.QueryRow("SELECT nextval('qr_seq') FROM qr").Scan(&g); err != nil {
			return err
		}
		var calls int64
		if err := spi.QueryRow("SELECT last_value FROM qr_seq").Scan(&calls); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("first=%d calls=%d", g, calls))
		var wm string
		if err := spi.QueryRow("SHOW work_mem").Scan(&wm); err != nil {
			return err
		}
		out = append(out, "show="+wm)
		err := spi.QueryRow("SELECT 1 WHERE false").Scan(&g)
		out = append(out, fmt.Sprintf("none=%v", errors.Is(err, spi.ErrNoRows)))
		// Query: a small result, then one of several batches.
		for _, k := range []int{10, 4500} {
			rows, err := spi.Query("SELECT g FROM generate_series(1, $1::int4) g", k)
			if err != nil {
				return err
			}
			var sum, cnt int64
			for rows.Next() {
				if err := rows.Scan(&g); err != nil {
					rows.Close()
					return err
				}
				sum += g
				cnt++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("query%d=%d/%d", k, cnt, sum))
		}
		return nil
	})
	return strings.Join(out, " "), err
}

// batches: Stmt.ExecBatch and spi.ExecBatch insert many rows in one call;
// a failing row fails the batch (in a savepoint: nothing of it is kept).
func batches() (string, error) {
	var out []string
	err := tx(func() error {
		if _, err := spi.Exec("CREATE TABLE eb(id int8 PRIMARY KEY, note text, at timestamptz)"); err != nil {
			return err
		}
		stmt, err := spi.Prepare("INSERT INTO eb VALUES ($1, $2, $3)")
		if err != nil {
			return err
		}
		defer stmt.Close()
		at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		var rows [][]any
		for i := 1; i <= 1000; i++ {
			rows = append(rows, []any{int64(i), fmt.Sprint("n", i), at})
		}
		n, err := stmt.ExecBatch(rows)
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("stmt=%d", n))
		rows = rows[:0]
		for i := 1001; i <= 1500; i++ {
			rows = append(rows, []any{int64(i), nil, nil})
		}
		for k := 0; k < 2; k++ { // uncached, then through the cache
			part := rows[k*250 : (k+1)*250]
			if n, err = spi.ExecBatch("INSERT INTO eb VALUES ($1, $2, $3)", part); err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("spi=%d", n))
		}
		err = spi.Savepoint(func() error {
			_, err := stmt.ExecBatch([][]any{{int64(5000), "a", nil}, {int64(1), "dup", nil}})
			return err
		})
		out = append(out, "dup="+sqlstate(err))
		_, err = stmt.ExecBatch([][]any{{int64(1)}})
		out = append(out, fmt.Sprintf("arity=%v", err != nil))
		var cnt, nulls int64
		var sum string
		if err := spi.QueryRow("SELECT count(*), count(*) FILTER (WHERE note IS NULL), sum(id)::text FROM eb").Scan(&cnt, &nulls, &sum); err != nil {
			return err
		}
		var ts time.Time
		if err := spi.QueryRow("SELECT at FROM eb WHERE id = 7").Scan(&ts); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("rows=%d nulls=%d sum=%s at=%s", cnt, nulls, sum, ts.Format(time.RFC3339)))
		return nil
	})
	return strings.Join(out, " "), err
}

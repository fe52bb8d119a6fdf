package integration

import (
	"regexp"
	"testing"
)

// TestPlanCache: spi's automatic plan cache is re-planned by PostgreSQL
// after DDL and search_path changes, survives errors, savepoints and
// transactions, converts values as the one-shot path does, stays within
// its size and frees what it evicts; QueryRow needs no cursor but runs
// non-SELECT statements to completion; ExecBatch runs many rows in one call.
func TestPlanCache(t *testing.T) {
	c := startWith(t, "PGGO_TEST_WORKERS=perf")
	conn := c.Connect(t)
	for _, tc := range []struct{ key, want string }{
		{"cache ddl", `^a=1;2 a,b=1x;2x sum=1099511627779$`},
		{"cache search_path", `^one,two,one$`},
		{"cache errors", `^dup=23505 tx=23505 rows=5 gone=42P01 back=1 params=42704$`},
		// 2024-07-01 01:30 in Berlin: the instant, the wall clock, its day.
		{"cache types", `^1719790200\|2024-07-01 01:30:00\|2024-07-01\|42\|<nil>$`},
		{"cache eviction", `^entries=4 kept=4 contexts=4; off: entries=0 kept=0 contexts=0; nocache: entries=0 kept=0 contexts=0$`},
		{"queryrow", `^returning first=1 inserted=15000 first=1 calls=1 show=\S+ none=true query10=10/55 query4500=4500/10127250$`},
		{"batch", `^stmt=1000 spi=250 spi=250 dup=23505 arity=true rows=1500 nulls=500 sum=1125750 at=2024-01-02T03:04:05Z$`},
	} {
		if got := result(t, conn, "perf", tc.key); !regexp.MustCompile(tc.want).MatchString(got) {
			t.Errorf("%s: %q, want %s", tc.key, got, tc.want)
		}
	}
	c.AssertNoCrashRecovery(t)
}

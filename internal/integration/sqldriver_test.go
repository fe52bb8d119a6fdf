package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// TestSQLDriver runs repository-style database/sql code inside a worker
// through the "pggo-spi" driver and checks what it saw and what it committed
// from an ordinary client.
func TestSQLDriver(t *testing.T) {
	ext := pgtest.Build(t, sourcePath("internal/testsql"))
	c := pgtest.Start(t, pgtest.Options{Preload: []string{ext.Loader}})
	conn := c.Connect(t)
	ctx := context.Background()

	pgtest.Eventually(t, 60*time.Second, "the sqldriver worker to finish", func() (bool, error) {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM sqldriver_results WHERE key = 'done'").Scan(&n)
		if err != nil && strings.Contains(err.Error(), "42P01") {
			return false, nil // the worker has not created the table yet
		}
		return n == 1, err
	})
	results := map[string]string{}
	rows, _ := conn.Query(ctx, "SELECT key, value FROM sqldriver_results")
	var key, value string
	if _, err := pgx.ForEachRow(rows, []any{&key, &value}, func() error {
		results[key] = value
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Exact observations; a value starting with "~" is a regular expression.
	want := []struct{ key, value string }{
		{"schema", "ping=nil"},
		{"ping outside a transaction", "~SPI needs a transaction: call it inside bgworker.Transaction"},
		{"insert", "alice=1 bob rows=1 lastinsertid error=true"},
		{"select", "id=1 name=alice balance=100.25 text=100.25 created=2024-05-17T08:30:15.123456Z note=vip/true | " +
			"id=2 name=bob balance=0 text=0 created=2024-05-17T09:30:15.123456Z note=/false | " +
			"missing: sql.ErrNoRows=true spi.ErrNoRows=true"},
		{"column types", "INT8 TEXT NUMERIC TIMESTAMPTZ TEXT DATE _INT4 JSONB | " +
			`day=2024-05-17 arr={1,2} json={"k": [1]} scantype=int64`},
		{"exec while rows are open", "names=alice,bob visits=2"},
		{"tx rollback", "inside=1 rollback=nil after=0 commit after rollback=true"},
		{"tx commit", "commit=nil after=1"},
		{"unique violation in tx", `dup=23505 duplicate key value violates unique constraint "accounts_name_key" (*pggo.Error true) ` +
			"next=25P02 current savepoint is aborted, commands ignored until the savepoint ends " +
			"rollback=nil grace=nil frank=0 erin=1"},
		{"commit after a failed statement", "dup=23505 commit=25P02 heidi=nil ivan=0"},
		{"prepared statement 100 times", "affected=100 scanned sum=7425 last=2024-05-21T11:30:15Z count=100 sum=7425.0 next transaction=148.5"},
		{"arguments", "int32=42 date=2024-02-29 json=x any=2 nil=true numeric=2.50 named type=1 uint64=9 untyped=7 " +
			"float=0.25 interval=90 multi=2"},
		{"context", "cancelled before=true commit=true judy=0 ken=0 after=nil"},
		{"tx with open rows", "commit=nil mallory=1"},
		{"other goroutine", "ErrWrongThread=true then=nil"},
		{"tx options", "~^serializable=pggo-spi: isolation level Serializable is not supported: .* \\| " +
			"read-only=pggo-spi: read-only Tx is not supported: .* \\| ping=nil$"},
		{"outer rollback", "transaction=the worker decides to roll back niaj=0 then=nil"},
	}
	for _, w := range want {
		got, ok := results[w.key]
		switch {
		case !ok:
			t.Errorf("%s: not recorded", w.key)
		case strings.HasPrefix(w.value, "~"):
			if !regexp.MustCompile(w.value[1:]).MatchString(got) {
				t.Errorf("%s:\n got %q\nwant match for %q", w.key, got, w.value[1:])
			}
		case got != w.value:
			t.Errorf("%s:\n got %q\nwant %q", w.key, got, w.value)
		}
	}

	t.Logf("throughput in one worker transaction, 20000 calls each: %s", results["throughput"])
	if !strings.Contains(results["throughput"], "INSERT (unprepared)") {
		t.Errorf("throughput: %s", results["throughput"])
	}

	// What the worker's transactions committed, seen by another session.
	var names []string
	rows, _ = conn.Query(ctx, "SELECT name FROM accounts WHERE name NOT LIKE 'p%' AND name NOT LIKE 'o%' ORDER BY name")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(names, ","), "alice,bob,dave,erin,grace,heidi,laura,mallory"; got != want {
		t.Errorf("committed accounts: %s\n want %s (carol, frank, ivan, judy, ken, niaj rolled back)", got, want)
	}
	var n int
	var sum string
	if err := conn.QueryRow(ctx, "SELECT count(*), sum(balance)::text FROM accounts WHERE name LIKE 'p%'").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 100 || sum != "7425.0" {
		t.Errorf("rows of the prepared INSERT: %d, sum %s; want 100, 7425.0", n, sum)
	}

	// The worker's transaction returns an error while a Tx is open; the Tx's
	// context is cancelled afterwards, so database/sql rolls it back from its
	// goroutine. The next transaction must work, and the driver must not roll
	// back that transaction's savepoint at the same level.
	t.Run("Tx open when the worker's transaction fails", func(t *testing.T) {
		var got string
		err := waitResult(c, conn, "cancelled tx of an earlier transaction", 20*time.Second, &got)
		if err != nil {
			t.Fatalf("%v; server log:\n%s", err, c.LogTail(5))
		}
		if want := "first=leaving with the Tx open second=nil third=nil oscar+olivia=1"; got != want {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	})

	// A Tx left open when its worker transaction returns nil: that
	// transaction cannot commit, and the worker must go on with the next.
	t.Run("Tx left open when the worker's transaction commits", func(t *testing.T) {
		re := regexp.MustCompile(`testsql leaked tx: .*`)
		deadline := time.Now().Add(20 * time.Second)
		for c.CountLog(re) == 0 && c.CountLog(workerFATAL) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		line := re.FindString(c.Log())
		if line == "" {
			t.Fatalf("the worker did not get there; server log:\n%s", c.LogTail(5))
		}
		t.Log(line)
		if !strings.Contains(line, "first=25001 a subtransaction is still open") {
			t.Errorf("the transaction with a leaked Tx: %s", line)
		}
		if !strings.Contains(line, "second=nil") {
			t.Errorf("after a transaction with a leaked Tx, the next one fails: %s", line)
		}
	})
	c.AssertNoCrashRecovery(t)
}

// workerFATAL is the log line of the sqldriver worker ending with FATAL.
var workerFATAL = regexp.MustCompile(`pggo_test_sqldriver FATAL:`)

// waitResult waits for the worker to record key in sqldriver_results, unless
// the worker ended with FATAL.
func waitResult(c *pgtest.Cluster, conn *pgx.Conn, key string, timeout time.Duration, value *string) error {
	deadline := time.Now().Add(timeout)
	for {
		if c.CountLog(workerFATAL) > 0 {
			time.Sleep(100 * time.Millisecond) // it may have recorded just before
			deadline = time.Now()
		}
		err := conn.QueryRow(context.Background(), "SELECT value FROM sqldriver_results WHERE key = $1", key).Scan(value)
		if err != pgx.ErrNoRows {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%q not recorded after %v", key, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

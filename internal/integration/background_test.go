package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pggo/pggo/pgtest"
)

// TestBackgroundExample runs examples/background, the pg_background-class
// extension: a query in a worker, its rows streamed back over a queue.
// Installed as pg_background is: CREATE EXTENSION, not preloaded; another
// pggo extension (testext) is preloaded, so the two loaders share every
// process and each must still find its own Go library.
func TestBackgroundExample(t *testing.T) {
	ext := pgtest.Build(t, sourcePath("examples/background"))
	c := pgtest.Start(t, pgtest.Options{Preload: []string{testext(t).Loader}, Extensions: []*pgtest.Extension{ext}})
	conn := c.Connect(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE EXTENSION background"); err != nil {
		t.Fatal(err)
	}
	var members int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
		WHERE e.extname = 'background' AND d.classid = 'pg_proc'::regclass
		AND d.objid::regproc::text IN ('background_launch', 'background_result', 'background_detach')`).Scan(&members); err != nil || members != 3 {
		t.Fatalf("functions of extension background: %d (%v), want 3", members, err)
	}

	t.Run("100,000 rows", func(t *testing.T) {
		start := time.Now()
		var n, sum int64
		var bad int
		err := conn.QueryRow(ctx, `SELECT count(*), sum(g), count(*) FILTER (WHERE m <> md5(g::text))
			FROM background_result(background_launch('SELECT g, md5(g::text) FROM generate_series(1,100000) g')) AS (g int, m text)`).
			Scan(&n, &sum, &bad)
		if err != nil {
			t.Fatal(err)
		}
		if n != 100000 || sum != 100000*100001/2 || bad != 0 {
			t.Fatalf("got %d rows, sum %d, %d wrong md5s", n, sum, bad)
		}
		t.Logf("100,000 rows round trip in %v", time.Since(start))
	})

	t.Run("quick queries: the worker may exit before launch returns", func(t *testing.T) {
		// A worker that sends its one row and exits before background_launch
		// asks for its pid must not make the launch fail.
		for i := 0; i < 100; i++ {
			var x int
			if err := conn.QueryRow(ctx, "SELECT x FROM background_result(background_launch('SELECT 1')) AS (x int)").Scan(&x); err != nil || x != 1 {
				t.Fatalf("round trip %d: %d, %v", i, x, err)
			}
		}
	})

	t.Run("the query's SQLSTATE reaches the caller", func(t *testing.T) {
		_, err := conn.Exec(ctx, "SELECT * FROM background_result(background_launch('SELECT 1/0')) AS (x int)")
		if sqlState(err) != "22012" || !strings.Contains(err.Error(), "division by zero") {
			t.Fatalf("failing query: %v, want 22012 division by zero", err)
		}
		_, err = conn.Exec(ctx, "SELECT * FROM background_result(background_launch('SELECT * FROM no_such_table')) AS (x int)")
		if sqlState(err) != "42P01" {
			t.Fatalf("missing table: %v, want 42P01", err)
		}
	})

	t.Run("runs as the caller's role; not executable by PUBLIC", func(t *testing.T) {
		for _, q := range []string{
			"CREATE ROLE bg_user LOGIN", "CREATE ROLE bg_other LOGIN",
			"CREATE TABLE bg_secret(v int)",
			"GRANT EXECUTE ON FUNCTION background_launch, background_result, background_detach TO bg_user",
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		other := connectAs(t, c, "bg_other")
		for _, q := range []string{"SELECT background_launch('SELECT 1')",
			"SELECT * FROM background_result(1) AS (x int)", "SELECT background_detach(1)"} {
			if _, err := other.Exec(ctx, q); sqlState(err) != "42501" {
				t.Fatalf("a role without EXECUTE: %s: %v, want 42501", q, err)
			}
		}
		user := connectAs(t, c, "bg_user")
		var who string
		if err := user.QueryRow(ctx, "SELECT * FROM background_result(background_launch('SELECT current_user::text')) AS (u text)").Scan(&who); err != nil || who != "bg_user" {
			t.Fatalf("the worker ran as %q (%v), want bg_user", who, err)
		}
		_, err := user.Exec(ctx, "SELECT * FROM background_result(background_launch('SELECT * FROM bg_secret')) AS (v int)")
		if sqlState(err) != "42501" {
			t.Fatalf("the worker read a table the caller may not: %v, want 42501", err)
		}
	})

	t.Run("detach lets it finish alone", func(t *testing.T) {
		var pid int32
		if err := conn.QueryRow(ctx, "SELECT background_launch('SELECT pg_sleep(0.2)::text, g FROM generate_series(1, 3) g')").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT background_detach($1)", pid); err != nil {
			t.Fatal(err)
		}
		pgtest.Eventually(t, 30*time.Second, "the detached worker to finish", func() (bool, error) {
			return !pgtest.ProcessAlive(int(pid)), nil
		})
		if strings.Contains(c.Log(), fmt.Sprintf("(PID %d) exited with exit code 1", pid)) {
			t.Fatalf("the detached worker failed:\n%s", c.LogTail(20))
		}
		if _, err := conn.Exec(ctx, "SELECT * FROM background_result($1) AS (a text, g int)", pid); sqlState(err) != "42704" {
			t.Fatalf("result after detach: %v, want 42704", err)
		}
	})
	c.AssertNoCrashRecovery(t)
}

package integration

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// examples/http_outbox against a loopback HTTP server: every row delivered
// and marked sent, across a worker restart (pg_terminate_backend: exit 1,
// restarted after 1 s) and a server restart (pg_ctl restart), each row
// applied once by its Idempotency-Key.
func TestHTTPOutboxExample(t *testing.T) {
	const rows = 300
	var mu sync.Mutex
	attempts := map[int]int{}
	var unknown int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, err := strconv.Atoi(r.Header.Get("Idempotency-Key"))
		time.Sleep(20 * time.Millisecond) // keeps requests in flight across the restarts
		mu.Lock()
		if err != nil || string(body) != "event "+strconv.Itoa(id) {
			unknown++
		} else {
			attempts[id]++
		}
		mu.Unlock()
	}))
	defer srv.Close()
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts)
	}

	ext := pgtest.Build(t, sourcePath("examples/http_outbox"))
	c := pgtest.Start(t, pgtest.Options{Preload: []string{ext.Loader}, Settings: map[string]string{
		"http_outbox.url":     srv.URL + "/events",
		"http_outbox.naptime": "200ms",
	}})
	ctx := context.Background()
	conn := c.Connect(t)
	ext.InstallSQL(t, conn)
	pgtest.Eventually(t, 30*time.Second, "the worker to create the outbox", func() (bool, error) {
		var ok bool
		err := conn.QueryRow(ctx, "SELECT to_regclass('outbox') IS NOT NULL").Scan(&ok)
		return ok, err
	})
	if _, err := conn.Exec(ctx, "INSERT INTO outbox(payload) SELECT 'event ' || g FROM generate_series(1, $1) g", rows); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pggo_wake_type('http_outbox')"); err != nil {
		t.Fatal(err)
	}

	pgtest.Eventually(t, 60*time.Second, "a third of the rows delivered", func() (bool, error) { return delivered() >= rows/3, nil })
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'http_outbox'").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	t.Logf("worker %d terminated after %d rows", pid, delivered())

	pgtest.Eventually(t, 60*time.Second, "two thirds of the rows delivered", func() (bool, error) { return delivered() >= 2*rows/3, nil })
	t.Logf("server restart after %d rows", delivered())
	c.Restart(t)
	conn2, err := pgx.Connect(ctx, c.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)

	pgtest.Eventually(t, 120*time.Second, "every row marked sent", func() (bool, error) {
		var pending int
		err := conn2.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE sent_at IS NULL").Scan(&pending)
		return err == nil && pending == 0, nil
	})
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for id := 1; id <= rows; id++ {
		switch n := attempts[id]; {
		case n == 0:
			t.Errorf("row %d marked sent but never delivered", id)
		case n > 1:
			dups += n - 1
		}
	}
	if len(attempts) != rows || unknown != 0 {
		t.Fatalf("the receiver saw %d distinct rows and %d unknown requests, want %d and 0", len(attempts), unknown, rows)
	}
	t.Logf("%d rows applied once each; %d repeated deliveries (in flight at a restart) deduplicated by Idempotency-Key", rows, dups)
	c.AssertNoCrashRecovery(t)
}

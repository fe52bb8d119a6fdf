package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

// Scenarios of the Go-native runtime (internal/integration/runtime_test.go):
// bgworker.Context, Do, Serve, the slog handler and waking from SQL. They
// record in rel_results like the reliability scenarios.
func init() {
	bgworker.RegisterFunction("testext_dyn_ctx_attached", func(pggo.Datum) error { return ctxScenario(true) })
	bgworker.RegisterFunction("testext_dyn_ctx_die", func(pggo.Datum) error { return ctxScenario(false) })
	bgworker.RegisterFunction("testext_dyn_do_ledger", doLedger)
	bgworker.RegisterFunction("testext_dyn_do_during", doDuring)
	bgworker.RegisterFunction("testext_dyn_do_shutdown", doShutdown)
	bgworker.RegisterFunction("testext_dyn_slog", slogScenario)
	bgworker.RegisterFunction("testext_dyn_wake_sql", wakeSQL)
	bgworker.RegisterFunction("testext_dyn_connect_flags", connectFlags)
	bgworker.RegisterFunction("testext_dyn_wait_event", waitEvent)
	bgworker.RegisterFunction("testext_dyn_connect_nologin", connectNoLogin)
}

// ctxScenario: goroutines stop when the worker's context ends, while the
// MainFunc blocks on a channel (not WaitLatch).
func ctxScenario(attach bool) error {
	if attach {
		bgworker.AttachSignalHandlers(bgworker.SIGTERM)
	}
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	ctx := bgworker.Context()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		bgworker.Go(func() {
			defer wg.Done()
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	relRecord("ready", "yes")
	wg.Wait() // blocked on Go, not on the latch
	if attach {
		relRecord("cause", context.Cause(ctx))
	}
	return nil
}

// doLedger: 16 goroutines × 1000 transactions through Do, MainFunc serving.
func doLedger(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	const goroutines, each = 16, 1000
	ctx, done := context.WithCancel(bgworker.Context())
	var wg sync.WaitGroup
	var failed atomic.Int64
	lat := make([][]time.Duration, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		bgworker.Go(func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				start := time.Now()
				err := bgworker.Do(ctx, func() error {
					return bgworker.Transaction(func() error {
						_, err := spi.Exec("INSERT INTO rel_do(g, i) VALUES ($1, $2)", g, i)
						return err
					})
				})
				lat[g] = append(lat[g], time.Since(start))
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	bgworker.Go(func() { wg.Wait(); done() })
	if err := bgworker.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	relRecord("do", fmt.Sprintf("failed=%d p50_us=%d p99_us=%d", failed.Load(),
		all[len(all)/2].Microseconds(), all[len(all)*99/100].Microseconds()))
	return nil
}

// doDuring: Do and Wake issued while the worker's statement waits on the
// latch (pg_sleep, a row lock the test holds) are served right after it.
func doDuring(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	for _, stmt := range []struct{ key, sql string }{
		{"sleep", "SELECT pg_sleep(0.5)"},
		{"lock", "SELECT * FROM rel_lock FOR UPDATE"},
	} {
		start := make(chan struct{})
		submitted := make(chan time.Time, 1)
		served := make(chan time.Time, 1)
		bgworker.Go(func() {
			<-start
			submitted <- time.Now()
			bgworker.Do(context.Background(), func() error { served <- time.Now(); return nil })
			// Do does not end WaitLatch (it waits on for its own reasons): Wake does.
			bgworker.Wake()
		})
		err := bgworker.Transaction(func() error {
			bgworker.ReportActivity("do_during " + stmt.key)
			close(start)
			<-submitted // queued before the statement starts waiting
			_, err := spi.Exec(stmt.sql)
			return err
		})
		bgworker.ReportActivity("")
		ended := time.Now()
		bgworker.WaitLatch(time.Minute)
		select {
		case at := <-served:
			relRecord("do "+stmt.key, fmt.Sprintf("err=%s served_after_statement_ms=%d", state(err), at.Sub(ended).Milliseconds()))
		default:
			relRecord("do "+stmt.key, "not served")
		}
	}
	// Wake the same way, during the row-lock wait; the test takes the lock
	// again, then reloads the configuration.
	for !bgworker.SighupReceived() {
		bgworker.WaitLatch(time.Minute)
	}
	start := make(chan struct{})
	bgworker.Go(func() { <-start; bgworker.Wake() })
	err := bgworker.Transaction(func() error {
		bgworker.ReportActivity("do_during wake")
		close(start)
		time.Sleep(10 * time.Millisecond) // the Wake lands before or during the wait
		_, err := spi.Exec("SELECT * FROM rel_lock FOR UPDATE")
		return err
	})
	bgworker.ReportActivity("")
	t0 := time.Now()
	bgworker.WaitLatch(time.Minute)
	relRecord("wake lock", fmt.Sprintf("err=%s waited_ms=%d", state(err), time.Since(t0).Milliseconds()))
	return nil
}

// doShutdown: Do with a cancelled context never runs fn; Do after SIGTERM
// returns ErrShutdown at once.
func doShutdown(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	ran := false
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := make(chan error, 1)
	bgworker.Go(func() { res <- bgworker.Do(cctx, func() error { ran = true; return nil }) })
	bgworker.WaitLatch(100 * time.Millisecond)
	cancelled := <-res
	relRecord("cancelled", fmt.Sprintf("err=%v ran=%v", cancelled, ran))
	for bgworker.WaitLatch(time.Minute) {
	}
	bgworker.Go(func() { res <- bgworker.Do(context.Background(), func() error { ran = true; return nil }) })
	after := <-res
	relRecord("after sigterm", fmt.Sprintf("shutdown=%v ran=%v cause=%v", errors.Is(after, bgworker.ErrShutdown), ran, context.Cause(bgworker.Context())))
	return nil
}

// slogScenario: 8 goroutines × 1000 records, then levels; after a SIGHUP
// (the test lowers log_min_messages to warning) Info must be hidden.
func slogScenario(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	logger := slog.New(bgworker.NewLogHandler(nil))
	ctx, done := context.WithCancel(bgworker.Context())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		bgworker.Go(func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				logger.Info("slog line", "g", g, "i", i)
			}
		})
	}
	bgworker.Go(func() { wg.Wait(); done() })
	bgworker.Serve(ctx)
	logger.With("k", "v").WithGroup("grp").Warn("slog warn", "a", "b c")
	logger.Error("slog error", "n", 1)
	logger.Debug("slog debug hidden")
	relRecord("phase1", "done")
	for !bgworker.SighupReceived() {
		bgworker.WaitLatch(time.Minute)
	}
	bgworker.WaitLatch(0) // the reload and the level refresh happen here
	logger.Info("slog info after warning")
	logger.Warn("slog warn after warning")
	relRecord("phase2", "done")
	return nil
}

// wakeSQL: wait up to a minute for pggo_wake from SQL.
func wakeSQL(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	bgworker.ReportActivity("waiting for pggo_wake")
	// A latch can be set for other reasons: the test compares the times.
	for bgworker.WaitLatch(time.Minute) {
		relRecord("woken", fmt.Sprintf("at_ms=%d", time.Now().UnixMilli()))
	}
	return nil
}

// connectFlags: PostgreSQL's connection bypasses, reported in the log (the
// database it connects to has no rel_results).
func connectFlags(pggo.Datum) error {
	err := bgworker.ConnectWorkerToSPI("rel_noconn", "", bgworker.BypassAllowConn)
	bgworker.Logf("testext connect_flags: BypassAllowConn: %s", state(err))
	return nil
}

func connectNoLogin(pggo.Datum) error {
	err := bgworker.ConnectWorkerToSPI("postgres", "rel_nologin", bgworker.BypassRoleLoginCheck)
	bgworker.Logf("testext connect_flags: BypassRoleLoginCheck: %s", state(err))
	return nil
}

// waitEvent waits under a custom wait event name.
func waitEvent(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	if err := bgworker.SetWaitEvent("testext_naptime"); err != nil {
		return err
	}
	for bgworker.WaitLatch(time.Minute) {
	}
	return nil
}

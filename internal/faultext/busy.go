package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/guc"
	"github.com/pggo/pggo/spi"
)

// Busy workers stand in for production workers while the suite sends
// signals, stops or kills the server. Each works in batches of units (one
// transaction each, which also bumps the worker's row in fault_progress)
// and naps between batches, the README's loop:
//
//	for {
//		for i := 0; i < batch && bgworker.WorkerContinue(); i++ { unit }
//		if !bgworker.WaitLatch(naptime) { return nil }
//	}
//
// A SIGTERM arriving mid-batch ends the batch; the nap's WaitLatch must then
// return false at once, whatever the naptime, even if the SIGTERM arrived
// while a statement was waiting on the latch itself (pg_sleep, a lock wait).

// spiMain: plain SPI in two nested savepoints, no latch waits.
func spiMain(arg pggo.Datum) error {
	return busyMain("spi", arg, func() error {
		return spi.Savepoint(func() error {
			var n int64
			if err := spi.QueryRow("SELECT count(*) FROM fault_lockrow").Scan(&n); err != nil {
				return err
			}
			return spi.Savepoint(func() error {
				_, err := spi.Exec("SELECT sum(x) FROM generate_series(1, $1::int) x", 200)
				return err
			})
		})
	})
}

// sleepMain: a latch-using statement in every unit.
func sleepMain(arg pggo.Datum) error {
	return busyMain("sleep", arg, func() error {
		_, err := spi.Exec("SELECT pg_sleep(0.05)")
		return err
	})
}

// lockMain: every lock worker updates one row, holding its lock across a
// short sleep, so the others wait on the row lock (a latch wait too).
func lockMain(arg pggo.Datum) error {
	return busyMain("lock", arg, func() error {
		if _, err := spi.Exec("SELECT n FROM fault_lockrow WHERE id = 1 FOR UPDATE"); err != nil {
			return err
		}
		if _, err := spi.Exec("SELECT pg_sleep(0.01)"); err != nil {
			return err
		}
		_, err := spi.Exec("UPDATE fault_lockrow SET n = n + 1 WHERE id = 1")
		return err
	})
}

type busy struct {
	kind                         string
	worker                       int
	sighups, cancels, unexpected int64
	lastError                    string
}

// paused reports the custom setting faultext.pause, re-read after every
// reload (which WaitLatch performs).
func paused() bool {
	v, ok, err := guc.Get("faultext.pause")
	return err == nil && ok && (v == "on" || v == "true" || v == "1")
}

func busyMain(kind string, arg pggo.Datum, unit func() error) error {
	if err := connect(); err != nil {
		return err
	}
	b := &busy{kind: kind, worker: int(arg.Int32())}
	err := bgworker.Transaction(func() error {
		_, err := spi.Exec(`INSERT INTO fault_progress(kind, worker, pid) VALUES ($1, $2, $3)
			ON CONFLICT (kind, worker) DO UPDATE SET pid = EXCLUDED.pid`, kind, b.worker, os.Getpid())
		return err
	})
	if err != nil {
		return err
	}
	batch := envInt("PGGO_FAULT_BATCH", math.MaxInt)
	nap := time.Duration(envInt("PGGO_FAULT_NAPTIME", 10000)) * time.Millisecond
	for {
		if !paused() {
			for i := 0; i < batch && bgworker.WorkerContinue(); i++ {
				b.note(bgworker.Transaction(func() error {
					if err := unit(); err != nil {
						return err
					}
					return b.progress()
				}))
				if bgworker.SighupReceived() {
					b.sighups++
				}
			}
		}
		napStart := time.Now()
		if !bgworker.WaitLatch(nap) {
			// How long the nap took tells a prompt SIGTERM from one that
			// waited for the naptime (or for some other wake-up).
			bgworker.Logf("faultext %s %d: leaving after SIGTERM (the nap's WaitLatch returned after %d ms)",
				kind, b.worker, time.Since(napStart).Milliseconds())
			return nil
		}
		if bgworker.SighupReceived() {
			b.sighups++
		}
	}
}

// progress records one more unit and what the worker has seen so far.
func (b *busy) progress() error {
	_, err := spi.Exec(`UPDATE fault_progress SET n = n + 1, sighups = $3, cancels = $4,
		unexpected = $5, last_error = $6 WHERE kind = $1 AND worker = $2`,
		b.kind, b.worker, b.sighups, b.cancels, b.unexpected, b.lastError)
	return err
}

// note classifies a unit's outcome: a query cancel (SIGINT storms) is
// expected, anything else is not.
func (b *busy) note(err error) {
	if err == nil {
		return
	}
	var pe *pggo.Error
	if errors.As(err, &pe) && pe.SQLState == "57014" {
		b.cancels++
		return
	}
	b.unexpected++
	b.lastError = err.Error()
	if b.unexpected <= 10 {
		bgworker.Warning(fmt.Sprintf("faultext %s %d: unexpected error: %v", b.kind, b.worker, err))
	}
}

// wakeMain checks that bgworker.Wake called while a statement waits on the
// latch (pg_sleep) is not lost: the WaitLatch after the statement must return
// at once, not after its timeout. It records each wait's duration in ms.
func wakeMain(arg pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	rounds := envInt("PGGO_FAULT_WAKE_ROUNDS", 3)
	nap := time.Duration(envInt("PGGO_FAULT_NAPTIME", 10000)) * time.Millisecond
	for i := 0; i < rounds && bgworker.WorkerContinue(); i++ {
		// Clear the latch first, so that only this round's Wake ends the wait.
		bgworker.WaitLatch(0)
		inStatement := make(chan struct{})
		bgworker.Go(func() {
			<-inStatement
			// The statement sleeps 200 ms: waking 20 ms into it lands the
			// Wake while pg_sleep waits on the latch.
			time.Sleep(20 * time.Millisecond)
			bgworker.Wake()
		})
		err := bgworker.Transaction(func() error {
			close(inStatement)
			_, err := spi.Exec("SELECT pg_sleep(0.2)")
			return err
		})
		if err != nil {
			record(fmt.Sprintf("wake %d", i), "error: "+err.Error())
			continue
		}
		start := time.Now()
		bgworker.WaitLatch(nap)
		record(fmt.Sprintf("wake %d", i), fmt.Sprint(time.Since(start).Milliseconds()))
	}
	record("wake done", fmt.Sprint(rounds))
	return idle()
}

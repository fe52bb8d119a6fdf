package main

import (
	"os"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

// The README's job-queue pattern, run by several workers at once.
func init() {
	bgworker.RegisterFunction("testext_queue", queueMain)
}

// queueBatch is how many jobs one transaction takes.
const queueBatch = 100

func queueMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	// Several workers create the schema the first time at once: without the
	// lock, CREATE ... IF NOT EXISTS can fail with a unique violation on the
	// catalog when two of them run it together.
	err := bgworker.Transaction(func() error {
		if _, err := spi.Exec("SELECT pg_advisory_xact_lock(hashtext('testext_queue schema'))"); err != nil {
			return err
		}
		if _, err := spi.Exec(`CREATE TABLE IF NOT EXISTS queue_jobs(
			id bigserial PRIMARY KEY, payload int NOT NULL,
			state text NOT NULL DEFAULT 'pending', attempts int NOT NULL DEFAULT 0, done_by int)`); err != nil {
			return err
		}
		// Only pending jobs are indexed: the index stays small however many
		// jobs are done, and the workers' query below uses it.
		_, err := spi.Exec("CREATE INDEX IF NOT EXISTS queue_jobs_pending ON queue_jobs(id) WHERE state = 'pending'")
		return err
	})
	if err != nil {
		return err
	}
	if err := record("ready", os.Getpid()); err != nil {
		return err
	}
	for bgworker.WaitLatch(time.Minute) { // woken by pggo_set_latch after an INSERT
		// Drain while work remains: a full batch means there may be more,
		// and waiting for the next wake-up would leave it queued.
		for {
			var n int64
			err := bgworker.Transaction(func() (err error) {
				// SKIP LOCKED: each worker takes jobs no other worker holds,
				// instead of queueing behind its row locks.
				n, err = spi.Exec(`UPDATE queue_jobs SET state = 'done', attempts = attempts + 1, done_by = $1
					WHERE id IN (SELECT id FROM queue_jobs WHERE state = 'pending'
						ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)`, os.Getpid(), queueBatch)
				return err
			})
			if err != nil {
				return err
			}
			if n < queueBatch {
				break
			}
		}
	}
	return nil
}

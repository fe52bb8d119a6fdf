// Command http_outbox relays the rows of an outbox table to an HTTP
// endpoint from inside PostgreSQL: the job of a sidecar daemon, without the
// daemon. It shows the Go-native worker runtime:
//
//   - goroutines do the I/O (four POST rows concurrently, with the worker's
//     context, so they stop with it);
//   - SQL goes through the worker's thread with bgworker.Do: a goroutine
//     that delivered a row marks it sent in its own small transaction;
//   - the main loop claims pending rows every naptime, or at once when
//     woken from SQL (SELECT pggo_wake_type('http_outbox') after an INSERT).
//
// Delivery is at least once, with an Idempotency-Key header (the row's id)
// so that the receiver applies each row once: a row POSTed just before a
// restart, and not yet marked sent, is POSTed again after it.
//
// SIGTERM is deliberately not attached: pg_terminate_backend ends the
// worker with exit code 1 and PostgreSQL restarts it after a second, as a
// service should; the goroutines see the context end either way.
//
// See it working:
//
//	go run ./cmd/pggo build ./examples/http_outbox
//	# postgresql.conf:
//	#   shared_preload_libraries = '/abs/path/http_outbox.so'
//	#   http_outbox.url = 'http://127.0.0.1:8080/events'
//	psql -c "INSERT INTO outbox(payload) VALUES ('hello')"
//	# the endpoint receives POST /events, body "hello", Idempotency-Key: 1
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/guc"
	"github.com/pggo/pggo/spi"
)

func init() {
	bgworker.RegisterFunction("http_outbox_main", outboxMain)
	pggo.OnInit(func() error {
		return bgworker.New("http_outbox relay").
			SetType("http_outbox").
			SetFunction("http_outbox_main").
			EnableSPIAccess().
			SetRestartTime(time.Second).
			Load()
	})
}

const senders = 4

type job struct {
	id      int64
	payload string
	url     string // http_outbox.url when claimed: settings live on the worker's thread
}

func outboxMain(pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP)
	db, _, err := guc.Get("http_outbox.database")
	if err != nil {
		return err
	}
	if db == "" {
		db = "postgres"
	}
	if err := bgworker.ConnectWorkerToSPI(db, ""); err != nil {
		return err
	}
	if err := createSchema(); err != nil {
		return err
	}
	ctx := bgworker.Context()
	client := &http.Client{Timeout: 10 * time.Second}
	jobs := make(chan job, 100)
	// Rows handed to a goroutine and not yet marked sent. Only the worker's
	// thread touches it: in the main loop, and in the functions given to Do.
	inFlight := map[int64]bool{}

	for i := 0; i < senders; i++ {
		bgworker.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-jobs:
					if err := deliver(ctx, client, j); err != nil {
						// Not delivered: let the main loop claim it again.
						bgworker.Do(ctx, func() error { delete(inFlight, j.id); return nil })
						continue
					}
					bgworker.Do(ctx, func() error {
						delete(inFlight, j.id)
						return bgworker.Transaction(func() error {
							_, err := spi.Exec("UPDATE outbox SET sent_at = now() WHERE id = $1 AND sent_at IS NULL", j.id)
							return err
						})
					})
				}
			}
		})
	}

	for {
		naptime, err := guc.Duration("http_outbox.naptime", time.Second, time.Second)
		if err != nil {
			bgworker.Warning(err.Error())
		}
		if err := claim(jobs, inFlight); err != nil {
			return err
		}
		if !bgworker.WaitLatch(naptime) {
			return nil // postmaster death
		}
	}
}

// claim hands pending rows that no goroutine holds to the senders, as many
// as the channel takes.
func claim(jobs chan<- job, inFlight map[int64]bool) error {
	url, _, err := guc.Get("http_outbox.url")
	if err != nil {
		return err
	}
	return bgworker.Transaction(func() error {
		rows, err := spi.Query("SELECT id, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT 500")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			j := job{url: url}
			if err := rows.Scan(&j.id, &j.payload); err != nil {
				return err
			}
			if inFlight[j.id] {
				continue
			}
			select {
			case jobs <- j:
				inFlight[j.id] = true
			default:
				return nil // the senders are busy: the rest next time
			}
		}
		return rows.Err()
	})
}

func deliver(ctx context.Context, client *http.Client, j job) error {
	if j.url == "" {
		return errors.New("http_outbox.url is not set")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.url, strings.NewReader(j.payload))
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", strconv.FormatInt(j.id, 10))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", j.url, resp.Status)
	}
	return nil
}

// createSchema creates the outbox once; several servers' workers may race,
// so under an advisory lock.
func createSchema() error {
	return bgworker.Transaction(func() error {
		if _, err := spi.Exec("SELECT pg_advisory_xact_lock(hashtext('http_outbox'))"); err != nil {
			return err
		}
		_, err := spi.Exec(`CREATE TABLE IF NOT EXISTS outbox(
			id bigserial PRIMARY KEY,
			payload text NOT NULL,
			sent_at timestamptz)`)
		if err == nil {
			_, err = spi.Exec("CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(id) WHERE sent_at IS NULL")
		}
		return err
	})
}

func main() {}

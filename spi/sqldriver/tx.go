package sqldriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pggo/pggo/internal/pg"
	"github.com/pggo/pggo/spi"
)

// tx is a database/sql Tx: a savepoint in the worker's transaction.
type tx struct {
	sub *spi.Subtransaction
	ctx context.Context
	// start is now() of the worker's transaction, taken when the Tx began
	// with a context that can be cancelled; zero otherwise. A rollback
	// handed over from another goroutine checks it, so that it never rolls
	// back a savepoint of a later transaction at the same level.
	start time.Time
	// Guarded by session.mu: database/sql's own goroutine may end the Tx.
	done      bool
	abandoned bool // Rollback came from another goroutine
}

var _ driver.Tx = (*tx)(nil)

// session is what the worker's one session shares with database/sql's
// goroutines, which may close rows and statements and roll back a Tx whose
// context was cancelled. PostgreSQL can only be called on the worker's
// goroutine, so they leave the work here, and the worker's goroutine does it
// at its next call into the driver.
var session struct {
	mu      sync.Mutex
	cleanup []func() // cursors to close and plans to free
	txs     []*tx    // open Txs, oldest first
}

func onWorkerThread() bool { return pg.OnWorkerThread() }

// later hands fn to the worker's goroutine.
func later(fn func()) {
	session.mu.Lock()
	session.cleanup = append(session.cleanup, fn)
	session.mu.Unlock()
}

// maintain runs on the worker's goroutine before every call: it does the
// cleanup other goroutines handed over, and rolls back the innermost Txs
// whose context is cancelled or which were rolled back from elsewhere, as
// database/sql expects of a Tx whose context ends.
func maintain() {
	session.mu.Lock()
	cleanup := session.cleanup
	session.cleanup = nil
	var reap []*tx
	for i := len(session.txs) - 1; i >= 0; i-- {
		t := session.txs[i]
		if !t.abandoned && t.ctx.Err() == nil {
			break // savepoints end innermost first
		}
		t.done = true
		reap = append(reap, t)
		session.txs = session.txs[:i]
	}
	session.mu.Unlock()

	for _, fn := range cleanup {
		fn()
	}
	if len(reap) == 0 {
		return
	}
	// If now() cannot be read, the transaction is aborted or inside a failed
	// savepoint: rolling back is then either right or a harmless error.
	now, err := xactStart()
	for _, t := range reap {
		if t.start.IsZero() || err != nil || now.Equal(t.start) {
			t.sub.Rollback()
		}
	}
}

// xactStart identifies the worker's current transaction by its start time.
func xactStart() (time.Time, error) {
	var t time.Time
	err := spi.QueryRow("SELECT now()").Scan(&t)
	return t, err
}

// BeginTx opens a savepoint. The isolation level and read/write mode are
// those of the worker's transaction, which a savepoint cannot change.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if level := sql.IsolationLevel(opts.Isolation); level != sql.LevelDefault {
		return nil, fmt.Errorf("pggo-spi: isolation level %s is not supported: a Tx is a savepoint in the worker's transaction and has that transaction's isolation level", level)
	}
	if opts.ReadOnly {
		return nil, errors.New("pggo-spi: read-only Tx is not supported: a Tx is a savepoint in the worker's transaction, which decides whether it may write")
	}
	if err := enter(ctx); err != nil {
		return nil, err
	}
	t := &tx{ctx: ctx}
	if ctx.Done() != nil {
		var err error
		if t.start, err = xactStart(); err != nil {
			return nil, err
		}
	}
	sub, err := spi.BeginSubtransaction()
	if err != nil {
		return nil, err
	}
	t.sub = sub
	session.mu.Lock()
	session.txs = append(session.txs, t)
	session.mu.Unlock()
	return t, nil
}

// end marks t ended; it reports false if it already was.
func (t *tx) end() bool {
	session.mu.Lock()
	defer session.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	session.txs = slices.DeleteFunc(session.txs, func(x *tx) bool { return x == t })
	return true
}

// Commit releases the savepoint into the worker's transaction. If a
// statement in the Tx failed, the savepoint was already rolled back and
// Commit returns that error (SQLSTATE 25P02).
func (t *tx) Commit() error {
	if err := enter(context.Background()); err != nil {
		return err
	}
	if err := t.ctx.Err(); err != nil {
		// database/sql checks too, but the context may end in between.
		if t.end() {
			t.sub.Rollback()
		}
		return err
	}
	if !t.end() {
		return sql.ErrTxDone
	}
	return t.sub.Release()
}

// Rollback rolls the savepoint back. database/sql calls it from its own
// goroutine when the Tx's context is cancelled: the rollback then happens
// at the driver's next call on the worker's goroutine.
func (t *tx) Rollback() error {
	if !onWorkerThread() {
		session.mu.Lock()
		if !t.done {
			t.abandoned = true
		}
		session.mu.Unlock()
		return nil
	}
	maintain() // may roll t back already, if its context ended
	if !t.end() {
		return nil
	}
	return t.sub.Rollback()
}

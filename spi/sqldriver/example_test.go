package sqldriver_test

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	_ "github.com/pggo/pggo/spi/sqldriver" // registers "pggo-spi"
)

type account struct {
	ID      int64
	Name    string
	Balance float64 // numeric arrives as text; database/sql parses it
	Created time.Time
	Note    sql.NullString
}

// A worker's main function using database/sql over SPI. The *sql.DB is opened
// once; each unit of work runs inside bgworker.Transaction, on the worker's
// goroutine.
func Example() {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		panic(err)
	}
	db, err := sql.Open("pggo-spi", "")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	// A worker has no request context: contexts are checked before each
	// call, so Background is right until bgworker.Context() (ending on
	// SIGTERM) exists.
	ctx := context.Background()

	for bgworker.WaitLatch(10 * time.Second) {
		err := bgworker.Transaction(func() error {
			var a account
			err := db.QueryRowContext(ctx,
				"SELECT id, name, balance, created, note FROM accounts WHERE name = $1", "alice").
				Scan(&a.ID, &a.Name, &a.Balance, &a.Created, &a.Note)
			if errors.Is(err, sql.ErrNoRows) {
				_, err = db.ExecContext(ctx,
					"INSERT INTO accounts(name, balance, created) VALUES ($1, $2, $3)", "alice", 100.5, time.Now())
				return err
			}
			if err != nil {
				return err
			}

			// A Tx is a savepoint: a unique violation loses only the Tx.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, "INSERT INTO accounts(name) VALUES ($1)", a.Name); err != nil {
				var pe *pggo.Error
				if errors.As(err, &pe) && pe.SQLState == "23505" {
					return tx.Rollback() // the worker's transaction goes on
				}
				return err
			}
			return tx.Commit() // into the worker's transaction, committed when this returns nil
		})
		if err != nil {
			bgworker.Warning(err.Error())
		}
	}
}

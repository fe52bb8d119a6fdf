package spi_test

import (
	"errors"
	"fmt"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

// Reading rows with bound parameters inside a worker's transaction.
func ExampleQuery() {
	err := bgworker.Transaction(func() error {
		rows, err := spi.Query("SELECT id, title FROM jobs WHERE state = $1 ORDER BY id", "new")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var title *string // NULL-able
			if err := rows.Scan(&id, &title); err != nil {
				return err
			}
			fmt.Println(id, title)
		}
		return rows.Err()
	})
	var pgErr *pggo.Error
	if errors.As(err, &pgErr) {
		fmt.Println("SQLSTATE", pgErr.SQLState)
	}
}

// A failing statement inside Savepoint loses only the savepoint.
func ExampleSavepoint() {
	_ = bgworker.Transaction(func() error {
		spi.Exec("INSERT INTO audit(note) VALUES ($1)", "kept")
		err := spi.Savepoint(func() error {
			_, err := spi.Exec("INSERT INTO items(id) VALUES ($1)", 1) // may violate a unique key
			return err
		})
		if err != nil {
			spi.Exec("INSERT INTO audit(note) VALUES ($1)", "duplicate skipped")
		}
		return nil // commits both audit rows
	})
}

// A prepared statement is planned once and kept across transactions.
func ExamplePrepare() {
	var stmt *spi.Stmt
	_ = bgworker.Transaction(func() (err error) {
		stmt, err = spi.Prepare("SELECT count(*) FROM jobs WHERE state = $1")
		return err
	})
	for i := 0; i < 3; i++ {
		_ = bgworker.Transaction(func() error {
			var n int64
			if err := stmt.QueryRow("new").Scan(&n); err != nil {
				return err
			}
			fmt.Println(n)
			return nil
		})
	}
	_ = bgworker.Transaction(stmt.Close)
}

package spi

import (
	"errors"

	"github.com/pggo/pggo"
)

// Implementations pending (issue 4).
var errTODO = errors.New("spi: not implemented yet")

func prepare(sql string, types []pggo.Oid) (*Stmt, error) { return nil, errTODO }
func (s *Stmt) exec(args []any) (int64, error)            { return 0, errTODO }
func (s *Stmt) query(args []any) (*Rows, error)           { return nil, errTODO }
func (s *Stmt) close() error                              { return nil }
func savepoint(fn func() error) error                     { return errTODO }
func beginSub() (*Subtransaction, error)                  { return nil, errTODO }
func (s *Subtransaction) end(commit bool) error           { return errTODO }

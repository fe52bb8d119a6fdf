package spi

import (
	"fmt"
	"runtime/debug"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
	"github.com/pggo/pggo/internal/wire"
)

// batchRows is how many rows a cursor fetch copies into Go at a time: large
// enough to amortise the call, small enough to keep memory flat.
const batchRows = 2000

func prepare(sql string, types []pggo.Oid) (*Stmt, error) {
	raw := make([]uint32, len(types))
	for i, t := range types {
		raw[i] = uint32(t)
	}
	plan, settled, err := pg.Prepare(sql, raw)
	if err != nil {
		return nil, err
	}
	s := &Stmt{sql: sql, plan: plan}
	for _, t := range settled {
		s.types = append(s.types, pggo.Oid(t))
	}
	return s, nil
}

func (s *Stmt) params(args []any) ([]byte, error) {
	if s.plan == nil {
		return nil, ErrStmtClosed
	}
	if len(args) != len(s.types) {
		return nil, fmt.Errorf("spi: the statement takes %d parameters, got %d arguments", len(s.types), len(args))
	}
	return encode(args)
}

func (s *Stmt) exec(args []any) (int64, error) {
	params, err := s.params(args)
	if err != nil {
		return 0, err
	}
	_, n, err := pg.ExecPlan(s.plan, params, len(args), -1)
	return int64(n), err
}

func (s *Stmt) execBatch(rows [][]any) (int64, error) {
	if s.plan == nil {
		return 0, ErrStmtClosed
	}
	if len(rows) == 0 {
		return 0, nil
	}
	var params []byte
	for i, args := range rows {
		if len(args) != len(s.types) {
			return 0, fmt.Errorf("spi: row %d: the statement takes %d parameters, got %d arguments", i+1, len(s.types), len(args))
		}
		var err error
		if params, err = wire.AppendParams(params, args); err != nil {
			return 0, asPGError(err)
		}
	}
	n, err := pg.ExecBatch(s.plan, params, len(s.types), len(rows))
	return int64(n), err
}

// ExecBatch runs sql once for every row of arguments in one call into
// PostgreSQL (see Stmt.ExecBatch); the statement is planned once, through
// the plan cache when it is on (see SetPlanCacheSize), otherwise with a
// plan prepared and freed for this call.
func ExecBatch(sql string, rows [][]any) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	first, err := encode(rows[0])
	if err != nil {
		return 0, fmt.Errorf("spi: row 1: %w", err)
	}
	var plan *pg.Plan
	for range 2 { // a first sighting only records the statement
		if plan, err = cachedPlan(sql, first, len(rows[0]), true); err != nil || plan != nil {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	if plan != nil {
		s := &Stmt{sql: sql, plan: plan, types: make([]pggo.Oid, len(rows[0]))}
		plans.enter()
		defer plans.leave()
		return s.execBatch(rows)
	}
	// Cache off or a statement it does not keep: a plan for this call.
	s, err := Prepare(sql)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return s.execBatch(rows)
}

func (s *Stmt) query(args []any) (*Rows, error) {
	params, err := s.params(args)
	if err != nil {
		return nil, err
	}
	return openRows(s.plan, "", params, len(args))
}

func (s *Stmt) close() error {
	if s.plan == nil {
		return nil
	}
	err := pg.FreePlan(s.plan)
	if err == nil {
		s.plan = nil
	}
	return err
}

// openRows runs a query and wraps its first batch (and cursor, if any).
func openRows(plan *pg.Plan, sql string, params []byte, nparams int) (*Rows, error) {
	buf, portal, more, err := pg.Query(plan, sql, params, nparams, batchRows)
	if err != nil {
		return nil, err
	}
	res, err := wire.DecodeResult(buf)
	if err != nil {
		if portal != "" {
			pg.CloseCursor(portal)
		}
		return nil, fmt.Errorf("spi: %w", err)
	}
	return &Rows{res: res, row: -1, portal: portal, more: more}, nil
}

func savepoint(fn func() error) (err error) {
	sub, err := beginSub()
	if err != nil {
		return err
	}
	fnErr := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				// A deferred worker failure (bgworker's abort) must go on up.
				if _, ok := r.(pg.Abort); ok {
					sub.end(false)
					panic(r)
				}
				err = &pg.PanicError{Value: r, Stack: debug.Stack()}
			}
		}()
		return fn()
	}()
	if fnErr != nil {
		sub.end(false)
		return fnErr
	}
	return sub.end(true)
}

func beginSub() (*Subtransaction, error) {
	level, err := pg.Subxact(pg.SubBegin, 0)
	if err != nil {
		return nil, err
	}
	return &Subtransaction{level: level}, nil
}

func (s *Subtransaction) end(commit bool) error {
	if s.done {
		return nil
	}
	op := pg.SubRollback
	if commit {
		op = pg.SubRelease
	}
	_, err := pg.Subxact(op, s.level)
	if err == nil || !commit {
		s.done = true
	}
	return err
}

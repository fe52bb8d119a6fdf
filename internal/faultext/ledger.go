package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/internal/faultplan"
	"github.com/pggo/pggo/shmem"
	"github.com/pggo/pggo/spi"
)

// ledgerMain runs PGGO_FAULT_ITERATIONS planned transactions against
// fault_ledger, then logs a summary line and idles. The test derives from the
// same plan which rows must be in the table; the worker checks as it goes
// that every error it sees is the one the plan injected, and logs the
// mismatches ("unexpected").
func ledgerMain(arg pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	l := &ledger{
		worker: int(arg.Int32()),
		faults: map[faultplan.Ending]int{},
	}
	planner := faultplan.Planner{Seed: uint64(envInt("PGGO_FAULT_SEED", 1))}
	for _, slug := range strings.Split(os.Getenv("PGGO_FAULT_EXCLUDE"), ",") {
		if slug == "" {
			continue
		}
		e, err := faultplan.ParseEnding(slug)
		if err != nil {
			return err
		}
		planner.Exclude = append(planner.Exclude, e)
	}
	n := envInt("PGGO_FAULT_ITERATIONS", 500)
	done := 0
	start := time.Now()
	for seq := 0; seq < n && bgworker.WorkerContinue(); seq++ {
		l.run(planner.Plan(l.worker, seq))
		done++
		// In the log, not a table: if the worker dies, the suite still
		// knows how far it got, whatever its transactions did.
		if done%200 == 0 {
			bgworker.Logf("faultext ledger %d: %d iterations done", l.worker, done)
		}
	}
	var kinds []string
	for k, v := range l.faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(kinds)
	bgworker.Logf("faultext ledger %d: done iterations=%d faults=%d unexpected=%d elapsed_ms=%d kinds=[%s]",
		l.worker, done, l.total, l.unexpected, time.Since(start).Milliseconds(), strings.Join(kinds, ","))
	return idle()
}

type ledger struct {
	worker     int
	it         faultplan.Iteration
	part       int // next row of the iteration
	faults     map[faultplan.Ending]int
	total      int
	unexpected int
}

// surprise notes an outcome the plan did not predict; the first ones are
// logged with details, all are counted.
func (l *ledger) surprise(format string, args ...any) {
	l.unexpected++
	if l.unexpected <= 20 {
		bgworker.Warning(fmt.Sprintf("faultext ledger %d seq %d: unexpected: %s",
			l.worker, l.it.Seq, fmt.Sprintf(format, args...)))
	}
}

func (l *ledger) run(it faultplan.Iteration) {
	l.it, l.part = it, 0
	err := bgworker.Transaction(func() error { return l.level(&it.Top, 0) })
	l.check(&it.Top, err, "transaction")
}

// insert writes the iteration's next row at level.
func (l *ledger) insert(level int) error {
	part := l.part
	l.part++
	_, err := spi.Exec("INSERT INTO fault_ledger(worker, seq, part, level) VALUES ($1, $2, $3, $4)",
		l.worker, l.it.Seq, part, level)
	return err
}

// level executes one level of the plan: rows, the child savepoint, rows, and
// the ending.
func (l *ledger) level(p *faultplan.Level, depth int) error {
	for i := 0; i < p.Before; i++ {
		if err := l.insert(depth); err != nil {
			l.surprise("insert at level %d failed: %v", depth, err)
		}
	}
	if p.Child != nil {
		err := spi.Savepoint(func() error { return l.level(p.Child, depth+1) })
		l.check(p.Child, err, fmt.Sprintf("savepoint at level %d", depth+1))
	}
	for i := 0; i < p.After; i++ {
		if err := l.insert(depth); err != nil {
			l.surprise("insert at level %d after its savepoint failed: %v", depth, err)
		}
	}
	if p.End != faultplan.OK {
		l.faults[p.End]++
		l.total++
	}
	switch p.End {
	case faultplan.OK:
		return nil
	case faultplan.GoError:
		return &pggo.Error{Severity: "ERROR", SQLState: "P0001", Message: "faultext: injected Go error"}
	case faultplan.Panic:
		panic("faultext: injected panic")
	case faultplan.SPIError:
		return l.fail(p.Failure)
	case faultplan.Swallowed:
		l.fail(p.Failure)
		return nil
	case faultplan.AbortedRetry:
		first := l.fail(p.Failure)
		// The level is aborted: the insert must be refused.
		if err := l.insert(depth); err == nil {
			l.surprise("a statement ran in an aborted level %d", depth)
		}
		return fmt.Errorf("faultext: gave up after %w", first)
	case faultplan.AbortedFault:
		l.fail(p.Failure)
		// No queue has this handle (an even one: odd handles name the main
		// shared memory region's segments on 17 and later), so the loader
		// raises an ERROR inside PostgreSQL, inside the aborted level.
		_, err := shmem.AttachQueue(shmem.QueueHandle(2), shmem.Receiver)
		if err == nil {
			l.surprise("AttachQueue found a message queue with handle 2")
			return errors.New("faultext: AttachQueue unexpectedly succeeded")
		}
		return err
	case faultplan.CommitFailure:
		if _, err := spi.Exec("INSERT INTO fault_deferred(ref) VALUES (-1)"); err != nil {
			l.surprise("insert violating a deferred key failed before commit: %v", err)
		}
		return nil
	}
	panic(fmt.Sprintf("faultext: unknown ending %v", p.End))
}

// fail runs the failing statement and checks that it failed as planned.
func (l *ledger) fail(f faultplan.Failure) error {
	_, err := spi.Exec(f.SQL())
	var pe *pggo.Error
	if !errors.As(err, &pe) || pe.SQLState != f.SQLState() {
		l.surprise("%q: got %v, want SQLSTATE %s", f.SQL(), err, f.SQLState())
	}
	if err == nil {
		err = errors.New("faultext: the failing statement succeeded")
	}
	return err
}

// check compares what Transaction or Savepoint returned with the plan.
func (l *ledger) check(p *faultplan.Level, err error, where string) {
	if p.End == faultplan.OK {
		if err != nil {
			l.surprise("%s should have committed: %v", where, err)
		}
		return
	}
	if err == nil {
		l.surprise("%s ended with %v but returned nil", where, p.End)
		return
	}
	var pe *pggo.Error
	switch p.End {
	case faultplan.GoError:
		if !errors.As(err, &pe) || pe.Message != "faultext: injected Go error" {
			l.surprise("%s: got %v, want the Go error", where, err)
		}
	case faultplan.Panic:
		if !strings.Contains(err.Error(), "faultext: injected panic") {
			l.surprise("%s: got %v, want the panic", where, err)
		}
	case faultplan.SPIError:
		if !errors.As(err, &pe) || pe.SQLState != p.Failure.SQLState() {
			l.surprise("%s: got %v, want SQLSTATE %s", where, err, p.Failure.SQLState())
		}
	case faultplan.CommitFailure:
		if !errors.As(err, &pe) || pe.SQLState != "23503" {
			l.surprise("%s: commit got %v, want SQLSTATE 23503", where, err)
		}
	}
}

// Package faultplan decides what each iteration of a fault-injecting ledger
// worker does, and which of the rows it writes must survive.
//
// The ledger workers of internal/faultext and the tests of internal/fault
// both call [Plan] with the same seed, worker and sequence number, so the test
// knows the expected content of the ledger table without the worker having to
// report it: a report written by the worker would go through the very
// transaction machinery under test, and a silently lost commit would lose the
// report too. The plan is a pure function of its inputs (no shared PRNG
// state), so iterations can be planned in any order.
//
// An iteration is one bgworker.Transaction (the top [Level]) holding up to
// three nested spi.Savepoint levels. Each level inserts some rows, runs its
// child savepoint, inserts more rows, then ends as its [Ending] says: commit,
// a returned Go error, a panic, a failing SQL statement, or a failure inside
// an already-aborted savepoint. A row is committed if and only if its level
// and every level above it ended with [OK]: a parent always carries on after
// its child savepoint fails, as PL/pgSQL's exception blocks do.
package faultplan

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// Ending is how a level (the transaction or a savepoint) ends.
type Ending int

const (
	// OK: the level's function returns nil; its rows survive if its parents'
	// do.
	OK Ending = iota
	// GoError: the function returns a *pggo.Error it made itself (no
	// PostgreSQL error happened).
	GoError
	// Panic: the function panics.
	Panic
	// SPIError: a statement fails with Failure's SQLSTATE and the function
	// returns that error.
	SPIError
	// Swallowed: a statement fails and the function ignores the error and
	// returns nil; the level must be rolled back all the same.
	Swallowed
	// AbortedRetry: a statement fails, then the function tries another
	// statement (an insert of one more row) in the same aborted level, which
	// must be refused, then returns its own error.
	AbortedRetry
	// AbortedFault: a statement fails, then the function calls something
	// that raises a PostgreSQL ERROR inside the already-aborted level
	// (shmem.AttachQueue of a queue that does not exist), then returns that
	// error.
	AbortedFault
	// CommitFailure (top level only): the function inserts a row violating
	// a deferred foreign key and returns nil, so the commit itself fails.
	CommitFailure
	numEndings
)

// slugs name the endings in settings (PGGO_FAULT_EXCLUDE).
var slugs = [...]string{
	OK:            "ok",
	GoError:       "goerror",
	Panic:         "panic",
	SPIError:      "spierror",
	Swallowed:     "swallowed",
	AbortedRetry:  "abortedretry",
	AbortedFault:  "abortedfault",
	CommitFailure: "commitfailure",
}

// Slug is the ending's name in settings, e.g. "abortedfault".
func (e Ending) Slug() string { return slugs[e] }

// ParseEnding is the inverse of Slug.
func ParseEnding(slug string) (Ending, error) {
	for e, s := range slugs {
		if s == slug {
			return Ending(e), nil
		}
	}
	return 0, fmt.Errorf("faultplan: unknown ending %q", slug)
}

var endingNames = [...]string{
	OK:            "ok",
	GoError:       "go error",
	Panic:         "panic",
	SPIError:      "spi error",
	Swallowed:     "swallowed spi error",
	AbortedRetry:  "statement in aborted savepoint",
	AbortedFault:  "ERROR in aborted savepoint",
	CommitFailure: "commit-time failure",
}

func (e Ending) String() string {
	if e >= 0 && int(e) < len(endingNames) {
		return endingNames[e]
	}
	return fmt.Sprintf("Ending(%d)", int(e))
}

// Endings lists every ending but OK: the kinds of injected faults, in a
// stable order for reports.
func Endings() []Ending {
	var out []Ending
	for e := GoError; e < numEndings; e++ {
		out = append(out, e)
	}
	return out
}

// Failure is the failing statement of SPIError, Swallowed, AbortedRetry and
// AbortedFault.
type Failure int

const (
	DivisionByZero Failure = iota
	UniqueViolation
	CheckViolation
	NotNullViolation
	UndefinedTable
	SyntaxError
	InvalidText
	NumericRange
	PLpgSQLRaise
	numFailures
)

var failures = [...]struct{ sql, state string }{
	DivisionByZero:   {"SELECT 1 / (random() * 0)::int", "22012"},
	UniqueViolation:  {"INSERT INTO fault_unique(k) VALUES (1)", "23505"},
	CheckViolation:   {"INSERT INTO fault_ledger(worker, seq, part, level) VALUES (-1, -1, -1, 0)", "23514"},
	NotNullViolation: {"INSERT INTO fault_ledger(worker, seq, part, level, note) VALUES (-1, -1, 0, 0, NULL)", "23502"},
	UndefinedTable:   {"SELECT * FROM fault_no_such_table", "42P01"},
	SyntaxError:      {"SELEC 1", "42601"},
	InvalidText:      {"SELECT 'not a number'::int", "22P02"},
	NumericRange:     {"SELECT 32767::int2 + 1::int2", "22003"},
	// PL/pgSQL catches an error in its own subtransaction and raises another:
	// PostgreSQL's savepoints nested inside pggo's.
	PLpgSQLRaise: {`DO $$ BEGIN BEGIN PERFORM 1 / 0; EXCEPTION WHEN division_by_zero THEN ` +
		`RAISE EXCEPTION 'faultext: re-raised in PL/pgSQL' USING ERRCODE = 'P0001'; END; END $$`, "P0001"},
}

// SQL is the failing statement.
func (f Failure) SQL() string { return failures[f].sql }

// SQLState is the SQLSTATE the statement fails with.
func (f Failure) SQLState() string { return failures[f].state }

// Level is the transaction (the top level) or one savepoint in it.
type Level struct {
	Before  int     // rows inserted before the child savepoint
	Child   *Level  // the nested savepoint, or nil
	After   int     // rows inserted after the child savepoint returned
	End     Ending  // how the level ends
	Failure Failure // the failing statement, for endings that need one
}

// Iteration is what one ledger worker does in one transaction.
type Iteration struct {
	Worker, Seq int
	Top         Level
}

// Row is one row the iteration tries to insert into fault_ledger.
type Row struct {
	Worker, Seq, Part int
	Level             int  // 0 for the transaction, 1.. for savepoints
	Committed         bool // whether it must be in the table afterwards
}

// Key identifies a row of fault_ledger.
type Key struct{ Worker, Seq, Part int }

// Key returns the row's primary key.
func (r Row) Key() Key { return Key{r.Worker, r.Seq, r.Part} }

// Planner plans iterations.
type Planner struct {
	Seed uint64
	// Exclude lists endings replaced by OK, to run the plan without one
	// kind of fault (and so tell which kind a failure comes from). The
	// other draws are unchanged.
	Exclude []Ending
}

// Plan returns iteration seq of worker with no ending excluded.
func Plan(seed uint64, worker, seq int) Iteration {
	return Planner{Seed: seed}.Plan(worker, seq)
}

// Plan returns iteration seq of worker. The same arguments always give the
// same iteration.
func (p Planner) Plan(worker, seq int) Iteration {
	seed := p.Seed
	r := rand.New(rand.NewPCG(seed^uint64(worker)*0x9e3779b97f4a7c15, uint64(seq)))
	// Savepoint depth: 0 (none) 40%, 1 20%, 2 25%, 3 15%.
	var depth int
	switch p := r.IntN(100); {
	case p < 40:
		depth = 0
	case p < 60:
		depth = 1
	case p < 85:
		depth = 2
	default:
		depth = 3
	}
	it := Iteration{Worker: worker, Seq: seq}
	it.Top = planLevel(r, 0, depth)
	for l := &it.Top; l != nil; l = l.Child {
		for _, x := range p.Exclude {
			if l.End == x {
				l.End = OK
			}
		}
	}
	return it
}

func planLevel(r *rand.Rand, level, depth int) Level {
	l := Level{Before: r.IntN(3), After: r.IntN(2)}
	if level < depth {
		c := planLevel(r, level+1, depth)
		l.Child = &c
	}
	// The transaction commits 45% of the time, a savepoint 40%; faults share
	// the rest evenly, so every kind is well represented.
	okPct := 40
	faults := []Ending{GoError, Panic, SPIError, Swallowed, AbortedRetry, AbortedFault}
	if level == 0 {
		okPct = 45
		faults = append(faults, CommitFailure)
	}
	if r.IntN(100) < okPct {
		l.End = OK
	} else {
		l.End = faults[r.IntN(len(faults))]
	}
	l.Failure = Failure(r.IntN(int(numFailures)))
	return l
}

// Rows returns every row the iteration inserts or tries to insert, in the
// order the worker executes them; Part numbers them from 0.
func (it Iteration) Rows() []Row {
	var rows []Row
	var walk func(l *Level, level int, parentsOK bool)
	walk = func(l *Level, level int, parentsOK bool) {
		ok := parentsOK && l.End == OK
		add := func(n int, committed bool) {
			for i := 0; i < n; i++ {
				rows = append(rows, Row{Worker: it.Worker, Seq: it.Seq, Part: len(rows), Level: level, Committed: committed})
			}
		}
		add(l.Before, ok)
		if l.Child != nil {
			walk(l.Child, level+1, ok)
		}
		add(l.After, ok)
		if l.End == AbortedRetry {
			add(1, false) // the insert tried in the aborted level
		}
	}
	walk(&it.Top, 0, true)
	return rows
}

// Faults counts the faults the iteration injects, by ending.
func (it Iteration) Faults() map[Ending]int {
	m := map[Ending]int{}
	for l := &it.Top; l != nil; l = l.Child {
		if l.End != OK {
			m[l.End]++
		}
	}
	return m
}

// NestedAbortedFaults counts AbortedFault endings two or more savepoints deep:
// the case where an ERROR inside an already-aborted savepoint has a
// savepoint, not the transaction, around it.
func (it Iteration) NestedAbortedFaults() int {
	n := 0
	level := 0
	for l := &it.Top; l != nil; l = l.Child {
		if l.End == AbortedFault && level >= 2 {
			n++
		}
		level++
	}
	return n
}

// Expected is what a run of iterations [0, n) of each worker must leave.
type Expected struct {
	Committed  map[Key]Row // rows that must be in fault_ledger
	RolledBack int         // rows that must not be
	Faults     map[Ending]int
	Nested     int // AbortedFault endings at savepoint depth >= 2
	Iterations int
}

// Expect plans iterations [0, iterations[w]) of every worker w.
func Expect(seed uint64, iterations []int) Expected {
	return Planner{Seed: seed}.Expect(iterations)
}

// Expect plans iterations [0, iterations[w]) of every worker w.
func (p Planner) Expect(iterations []int) Expected {
	e := Expected{Committed: map[Key]Row{}, Faults: map[Ending]int{}}
	for w, n := range iterations {
		for seq := 0; seq < n; seq++ {
			it := p.Plan(w, seq)
			for _, row := range it.Rows() {
				if row.Committed {
					e.Committed[row.Key()] = row
				} else {
					e.RolledBack++
				}
			}
			for k, v := range it.Faults() {
				e.Faults[k] += v
			}
			e.Nested += it.NestedAbortedFaults()
			e.Iterations++
		}
	}
	return e
}

// TotalFaults is the number of faults injected, of every kind.
func (e Expected) TotalFaults() int {
	n := 0
	for _, v := range e.Faults {
		n += v
	}
	return n
}

// SortedKeys returns keys in (worker, seq, part) order, for stable messages.
func SortedKeys(keys []Key) []Key {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Worker != b.Worker {
			return a.Worker < b.Worker
		}
		if a.Seq != b.Seq {
			return a.Seq < b.Seq
		}
		return a.Part < b.Part
	})
	return keys
}

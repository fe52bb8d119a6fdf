package faultplan

import (
	"reflect"
	"testing"
)

func TestPlanIsDeterministic(t *testing.T) {
	for seq := 0; seq < 200; seq++ {
		a, b := Plan(7, 1, seq), Plan(7, 1, seq)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("Plan(7, 1, %d) differs between calls", seq)
		}
	}
	// Workers and seeds must not share plans, or two workers would test the
	// same thing.
	same := 0
	for seq := 0; seq < 200; seq++ {
		if reflect.DeepEqual(Plan(7, 0, seq).Top, Plan(7, 1, seq).Top) {
			same++
		}
	}
	if same > 40 {
		t.Fatalf("workers 0 and 1 got the same plan %d times in 200", same)
	}
}

// A hand-made iteration: the transaction commits, its savepoint fails in an
// aborted state, and that savepoint's child committed into it.
func TestRowsFollowSavepointSemantics(t *testing.T) {
	it := Iteration{Worker: 3, Seq: 9, Top: Level{
		Before: 1, After: 1, End: OK,
		Child: &Level{Before: 1, End: AbortedRetry, Child: &Level{Before: 2, End: OK}},
	}}
	got := []bool{}
	for _, r := range it.Rows() {
		got = append(got, r.Committed)
	}
	// Level 1's retry row is inserted after its child returned.
	rows := it.Rows()
	order := []int{0, 1, 2, 2, 1, 0}
	for i, r := range rows {
		if r.Part != i || r.Level != order[i] {
			t.Fatalf("row %d: part %d level %d, want part %d level %d", i, r.Part, r.Level, i, order[i])
		}
	}
	// Rows: top.Before, l1.Before, l2.Before x2, l1 retry, top.After.
	want := []bool{true, false, false, false, false, true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
	if f := it.Faults(); f[AbortedRetry] != 1 || len(f) != 1 {
		t.Fatalf("faults %v", f)
	}
}

func TestTopFailureRollsBackEverything(t *testing.T) {
	it := Iteration{Top: Level{Before: 2, End: Panic, Child: &Level{Before: 1, End: OK}}}
	for _, r := range it.Rows() {
		if r.Committed {
			t.Fatalf("row %+v committed under a panicking transaction", r)
		}
	}
}

func TestEveryKindIsInjected(t *testing.T) {
	e := Expect(1, []int{800, 800})
	for _, k := range Endings() {
		if e.Faults[k] < 20 {
			t.Errorf("%v injected %d times in 1600 iterations", k, e.Faults[k])
		}
	}
	if e.Nested < 20 {
		t.Errorf("only %d ERRORs in aborted savepoints two or more levels deep", e.Nested)
	}
	if e.TotalFaults() < 1000 || len(e.Committed) == 0 || e.RolledBack == 0 {
		t.Errorf("faults %d committed %d rolled back %d", e.TotalFaults(), len(e.Committed), e.RolledBack)
	}
}

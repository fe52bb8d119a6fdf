package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
)

// badCases are worker definitions with one field wrong each. The fault
// suite loads every one statically (PGGO_FAULT_BADINPUT: the server must
// refuse to start, naming the field) and dynamically (the badinput worker:
// LoadDynamic must return an error naming the field and register nothing).
// The suite knows the expected field of each case by its name.
// badFunction hides a wrong function name from pggo build's check of
// SetFunction literals, so that the server's own check is what is tested.
func badFunction(name string) string { return name }

var badCases = map[string]func() *bgworker.Builder{
	"name-too-long":       func() *bgworker.Builder { return good(strings.Repeat("n", 96)) },
	"name-empty":          func() *bgworker.Builder { return good("") },
	"name-nul":            func() *bgworker.Builder { return good("faultext\x00bad") },
	"type-too-long":       func() *bgworker.Builder { return good("faultext bad").SetType(strings.Repeat("t", 96)) },
	"type-nul":            func() *bgworker.Builder { return good("faultext bad").SetType("faultext\x00") },
	"function-too-long":   func() *bgworker.Builder { return good("faultext bad").SetFunction(strings.Repeat("f", 96)) },
	"function-nul":        func() *bgworker.Builder { return good("faultext bad").SetFunction(badFunction("faultext_noop\x00")) },
	"function-unknown":    func() *bgworker.Builder { return good("faultext bad").SetFunction(badFunction("faultext_nope")) },
	"function-not-c-name": func() *bgworker.Builder { return good("faultext bad").SetFunction(badFunction("faultext-noop")) },
	"library-other":       func() *bgworker.Builder { return good("faultext bad").SetLibrary("plpgsql") },
	"library-nul":         func() *bgworker.Builder { return good("faultext bad").SetLibrary("faultext\x00") },
	"extra-too-long":      func() *bgworker.Builder { return good("faultext bad").SetExtra(strings.Repeat("e", 128)) },
	"extra-nul":           func() *bgworker.Builder { return good("faultext bad").SetExtra("a\x00b") },
	"restart-fraction":    func() *bgworker.Builder { return good("faultext bad").SetRestartTime(1500 * time.Millisecond) },
	"restart-negative":    func() *bgworker.Builder { return good("faultext bad").SetRestartTime(-2 * time.Second) },
	"restart-too-long": func() *bgworker.Builder {
		return good("faultext bad").SetRestartTime(time.Duration(1<<31) * time.Second)
	},
	"start-invalid":       func() *bgworker.Builder { return good("faultext bad").SetStartTime(bgworker.StartTime(9)) },
	"start-postmaster":    func() *bgworker.Builder { return good("faultext bad").SetStartTime(bgworker.PostmasterStart) },
	"notify-pid-negative": func() *bgworker.Builder { return good("faultext bad").SetNotifyPID(-1) },
}

// good is a valid definition of the noop worker, which each case spoils.
func good(name string) *bgworker.Builder {
	return bgworker.New(name).SetType("faultext_noop").SetLibrary("faultext").
		SetFunction("faultext_noop").EnableSPIAccess()
}

func badBuilder(name string) (*bgworker.Builder, bool) {
	f, ok := badCases[name]
	if !ok {
		return nil, false
	}
	return f(), true
}

// badInputMain tries every bad case with LoadDynamic and records each error
// under the case's name ("registered" if one was accepted), then launches a
// valid worker to show that no slot was taken, and records "control".
func badInputMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	for name, f := range badCases {
		w, err := f().LoadDynamic()
		if err == nil {
			// Stop it, so that the control below still finds a slot.
			w.Terminate()
			record(name, "registered")
			continue
		}
		record(name, err.Error())
	}
	w, err := good("faultext control").SetNotifyPID(os.Getpid()).LoadDynamic()
	if err != nil {
		record("control", "error: "+err.Error())
	} else if pid, err := w.WaitForStartup(); err != nil {
		// The noop worker may have come and gone already: Stopped is fine.
		record("control", "started: "+err.Error())
	} else {
		record("control", fmt.Sprintf("started pid %d", pid))
	}
	record("done", fmt.Sprint(len(badCases)))
	return idle()
}

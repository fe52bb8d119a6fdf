package guc

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestDefineChecks: a bad declaration is reported by the handle (and would
// stop the server's start) with the setting named, before any C sees it.
func TestDefineChecks(t *testing.T) {
	for want, get := range map[string]func() error{
		`"unit.bounds": the default 5 is not within [10, 1]`: func() error { _, err := DefineInt("unit.bounds", "d", 5, 10, 1, User).Get(); return err },
		`"unit.wide": PostgreSQL's integer settings are 32-bit`: func() error {
			_, err := DefineInt("unit.wide", "d", 0, 0, 1<<40, User).Get()
			return err
		},
		`"noprefix": the name must be PREFIX.NAME`:           func() error { _, err := DefineBool("noprefix", "d", false, User).Get(); return err },
		`"unit.1x": "1x" is not a valid name part`:           func() error { _, err := DefineBool("unit.1x", "d", false, User).Get(); return err },
		`"unit.nodesc": the description must be non-empty`:   func() error { _, err := DefineString("unit.nodesc", "", "", User).Get(); return err },
		`"unit.enum": the default is not one of the options`: func() error { _, err := DefineEnum("unit.enum", "d", "x", []string{"a", "b"}, User).Get(); return err },
		`"unit.dup": option "A": options must be non-empty and distinct`: func() error {
			_, err := DefineEnum("unit.dup", "d", "a", []string{"a", "A"}, User).Get()
			return err
		},
		`"unit.ctx": unknown context 9`:                      func() error { _, err := DefineBool("unit.ctx", "d", false, Context(9)).Get(); return err },
		`"unit.fbounds": the default 2 is not within [0, 1]`: func() error { _, err := DefineFloat("unit.fbounds", "d", 2, 0, 1, User).Get(); return err },
		`"unit.fnan": NaN is not a valid default or bound`: func() error {
			_, err := DefineFloat("unit.fnan", "d", 0, math.NaN(), 1, User).Get()
			return err
		},
		`"unit.dfrac": the default 1.5s is not a whole number of seconds`: func() error {
			_, err := DefineDuration("unit.dfrac", "d", 1500*time.Millisecond, 0, time.Hour, Seconds, User).Get()
			return err
		},
		`"unit.dmax": the maximum 596523h14m8s is 2147483648 seconds, more than PostgreSQL's 32-bit integer settings hold`: func() error {
			_, err := DefineDuration("unit.dmax", "d", 0, 0, (math.MaxInt32+1)*time.Second, Seconds, User).Get()
			return err
		},
		`"unit.dunit": a duration's unit must be Milliseconds, Seconds or Minutes, not MB`: func() error {
			_, err := DefineDuration("unit.dunit", "d", 0, 0, time.Hour, Megabytes, User).Get()
			return err
		},
		`"unit.dopt": the unit is DefineDuration's argument (s), not an option (ms)`: func() error {
			_, err := DefineDuration("unit.dopt", "d", 0, 0, time.Hour, Seconds, User, Milliseconds).Get()
			return err
		},
		`"unit.boolunit": only integer and real settings have a unit`: func() error {
			_, err := DefineBool("unit.boolunit", "d", false, User, Seconds).Get()
			return err
		},
		`"unit.twounits": two units given (kB and MB)`: func() error {
			_, err := DefineInt("unit.twounits", "d", 0, 0, 1, User, Kilobytes, Megabytes).Get()
			return err
		},
		`"unit.hooktype": the check hook takes func(string) error; this setting's values are int`: func() error {
			_, err := DefineInt("unit.hooktype", "d", 0, 0, 1, User, Check(func(string) error { return nil })).Get()
			return err
		},
		`"unit.twohooks": two check hooks given`: func() error {
			ok := func(int) error { return nil }
			_, err := DefineInt("unit.twohooks", "d", 0, 0, 1, User, Check(ok), Check(ok)).Get()
			return err
		},
		`"unit.baddef": the default 100ms is rejected by its check hook: no`: func() error {
			_, err := DefineDuration("unit.baddef", "d", 100*time.Millisecond, 0, time.Second, Milliseconds, User,
				Check(func(time.Duration) error { return errors.New("no") })).Get()
			return err
		},
		`"unit.panicdef": the default "x" is rejected by its check hook: the check hook panicked: boom`: func() error {
			_, err := DefineString("unit.panicdef", "d", "x", User, Check(func(string) error { panic("boom") })).Get()
			return err
		},
	} {
		if err := get(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	DefineInt("unit.twice", "d", 1, 0, 2, Sighup)
	if _, err := DefineInt("unit.TWICE", "d", 1, 0, 2, Sighup).Get(); err == nil || !strings.Contains(err.Error(), "already declared") {
		t.Errorf("a second declaration: %v", err)
	}
}

// TestParseUnits: a placeholder's text (OnInit) is read as PostgreSQL
// reads a value with a unit.
func TestParseUnits(t *testing.T) {
	for _, c := range []struct {
		v    string
		unit Unit
		want float64
	}{
		{"300", Seconds, 300}, {"5min", Seconds, 300}, {" 1.5 s ", Milliseconds, 1500}, {"2h", Minutes, 120},
		{"1d", Seconds, 86400}, {"500us", Milliseconds, 0.5}, {"1GB", Megabytes, 1024}, {"64kB", Bytes, 65536},
		{"1MB", Blocks, 128}, {"0x10", Kilobytes, 16}, {"1e3", Milliseconds, 1000}, {"2.5", 0, 2.5},
	} {
		if got, err := parseUnits(c.v, c.unit); err != nil || got != c.want {
			t.Errorf("parseUnits(%q, %v) = %v, %v; want %v", c.v, c.unit, got, err, c.want)
		}
	}
	for _, c := range []struct {
		v    string
		unit Unit
	}{{"5min", Megabytes}, {"5MB", Seconds}, {"5 parsecs", Seconds}, {"x", Seconds}, {"5s", 0}} {
		if got, err := parseUnits(c.v, c.unit); err == nil {
			t.Errorf("parseUnits(%q, %v) = %v, want an error", c.v, c.unit, got)
		}
	}
}

package guc

import (
	"strings"
	"testing"
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
		`"unit.ctx": unknown context 9`: func() error { _, err := DefineBool("unit.ctx", "d", false, Context(9)).Get(); return err },
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

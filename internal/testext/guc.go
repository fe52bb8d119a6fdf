package main

import (
	"fmt"
	"os"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
	"github.com/pggo/pggo/guc"
)

// Declared settings, one of each kind and context, for TestDeclaredSettings.
var (
	batchSize = guc.DefineInt("testext.batch_size", "Rows per batch (a test setting).", 10, 1, 1000, guc.Sighup)
	enabled   = guc.DefineBool("testext.enabled", "Whether the test feature is on.", true, guc.User)
	label     = guc.DefineString("testext.label", "A label (a test setting).", "none", guc.Superuser)
	mode      = guc.DefineEnum("testext.mode", "How the test runs.", "fast", []string{"fast", "safe"}, guc.Postmaster)
)

func init() {
	bgworker.RegisterFunction("testext_setting_watch", settingsMain)
	fmgr.Register("testext_settings", "() RETURNS text", settingsText)
	pggo.OnInit(func() error {
		// A bad declaration must make the server refuse to start, naming it.
		switch os.Getenv("PGGO_TEST_BADSETTING") {
		case "bounds":
			guc.DefineInt("testext.bad_bounds", "Bad bounds.", 5, 10, 1, guc.User)
		case "name":
			guc.DefineBool("nodot", "No prefix.", false, guc.User)
		case "enum":
			guc.DefineEnum("testext.bad_enum", "Default not an option.", "slow", []string{"fast", "safe"}, guc.User)
		}
		return nil
	})
}

// settingsText reads the declared settings from Go, in the calling backend.
func settingsText(*fmgr.Args) (any, error) {
	b, err1 := batchSize.Get()
	e, err2 := enabled.Get()
	l, err3 := label.Get()
	m, err4 := mode.Get()
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			return nil, err
		}
	}
	return fmt.Sprintf("batch_size=%d enabled=%v label=%s mode=%s", b, e, l, m), nil
}

// settingsMain records testext.batch_size each time it sees a new value:
// a reload (SIGHUP) reaches it in its loop, through WaitLatch.
func settingsMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	last := -1
	for bgworker.WaitLatch(50 * time.Millisecond) {
		n, err := batchSize.Get()
		if err != nil {
			return err
		}
		if n != last {
			if err := record(fmt.Sprintf("batch_size=%d", n), n); err != nil {
				return err
			}
			last = n
		}
	}
	return nil
}

// Settings with units, flags and check hooks (prefix testguc, with no
// Postmaster setting: a library loaded late reserves it too), for
// TestSettingUnitsFlagsHooks and TestSettingsNotPreloaded.
var (
	ratio   = guc.DefineFloat("testguc.ratio", "A fraction (a test setting).", 0.25, 0, 1, guc.User)
	naptime = guc.DefineDuration("testguc.naptime", "How long to sleep (a test setting).",
		10*time.Second, time.Second, time.Hour, guc.Seconds, guc.User)
	cache  = guc.DefineInt("testguc.cache", "Cache size (a test setting).", 64, 1, 1024, guc.User, guc.Megabytes)
	hidden = guc.DefineBool("testguc.hidden", "Not in SHOW ALL (a test setting).", false, guc.User, guc.NoShowAll)
	secret = guc.DefineString("testguc.secret", "Shown to superusers only (a test setting).", "s3cret",
		guc.Superuser, guc.SuperuserOnly, guc.NotInSample)
	even = guc.DefineInt("testguc.even", "An even number (a test setting with a check hook).", 2, 0, 100, guc.User,
		guc.Check(func(n int) error {
			if n%2 != 0 {
				return fmt.Errorf("%d is odd", n)
			}
			return nil
		}))
	word = guc.DefineString("testguc.word", "A word (a test setting whose hook panics).", "ok", guc.User,
		guc.Check(func(s string) error {
			if s == "boom" {
				panic("the hook exploded")
			}
			return nil
		}))
	short = guc.DefineDuration("testguc.short", "A duration with a check hook (a test setting).",
		100*time.Millisecond, 0, time.Minute, guc.Milliseconds, guc.User,
		guc.Check(func(d time.Duration) error {
			if d > 10*time.Second {
				return fmt.Errorf("%v is longer than 10s", d)
			}
			return nil
		}))
)

func init() {
	fmgr.Register("testguc_values", "() RETURNS text", gucValues)
	bgworker.RegisterFunction("testext_dyn_settings", dynSettings)
}

// gucLine is every declared setting as Go reads it.
func gucLine() (string, error) {
	var errs []error
	get := func(v any, err error) any { errs = append(errs, err); return v }
	line := fmt.Sprintf("batch_size=%v mode=%v ratio=%v naptime=%v cache=%v hidden=%v secret=%v even=%v word=%v short=%v",
		get(batchSize.Get()), get(mode.Get()), get(ratio.Get()), get(naptime.Get()), get(cache.Get()),
		get(hidden.Get()), get(secret.Get()), get(even.Get()), get(word.Get()), get(short.Get()))
	for _, err := range errs {
		if err != nil {
			return "", err
		}
	}
	return line, nil
}

func gucValues(*fmgr.Args) (any, error) { return gucLine() }

// dynSettings records the settings as a dynamic worker sees them.
func dynSettings(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	line, err := gucLine()
	if err != nil {
		return err
	}
	return record("settings", line)
}

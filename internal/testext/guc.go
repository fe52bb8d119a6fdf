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

package bgworker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
)

var pg15 = pg.Limits{Name: 96, Extra: 128, Library: 96, PGVersionNum: 150000}

const loader = "/srv/pg/lib/example.so"

func exportedAll(string) error { return nil }

func init() {
	RegisterFunction("unit_main", func(pggo.Datum) error { return nil })
}

func TestDefaultsArePgx(t *testing.T) {
	b := New("unit_main")
	// The library is the one default that differs: this extension, not name.
	if b.typ != "unit_main" || b.library != "" || b.function != "unit_main" ||
		b.startTime != PostmasterStart || b.restartTime != NeverRestart || b.arg != 0 || b.extra != "" || b.notifyPID != 0 {
		t.Fatalf("defaults differ from pgx: %+v", b)
	}
	if New("x").EnableSPIAccess().startTime != RecoveryFinished {
		t.Fatal("EnableSPIAccess must move the start time to RecoveryFinished")
	}
}

func TestValidSpec(t *testing.T) {
	s, err := New("w").SetType("t").SetLibrary("example").SetFunction("unit_main").EnableSPIAccess().
		SetRestartTime(5*time.Second).SetArgument(pggo.Int32Datum(-3)).SetExtra("x").SetNotifyPID(7).
		validate(pg15, loader, exportedAll)
	if err != nil {
		t.Fatal(err)
	}
	want := pg.Spec{Name: "w", Type: "t", Library: loader, Function: "unit_main", Extra: "x",
		Flags: pg.FlagShmemAccess | pg.FlagDatabaseConnection, StartTime: int(RecoveryFinished),
		RestartTime: 5, Arg: uintptr(pggo.Int32Datum(-3)), NotifyPID: 7}
	if s != want {
		t.Fatalf("spec %+v, want %+v", s, want)
	}
	for _, lib := range []string{"example", "example.so", loader, "$libdir/example", "$libdir/example.so"} {
		if _, err := New("w").SetLibrary(lib).SetFunction("unit_main").validate(pg15, loader, exportedAll); err != nil {
			t.Errorf("library %q: %v", lib, err)
		}
	}
	if s, _ := New("w").SetLibrary("example").SetFunction("unit_main").validate(pg15, loader, exportedAll); s.RestartTime != -1 {
		t.Errorf("NeverRestart must register -1, got %d", s.RestartTime)
	}
}

// SetLibrary is optional: without it the worker runs this extension,
// registered by the loader's absolute path, exactly as with SetLibrary.
func TestLibraryDefaultsToThisExtension(t *testing.T) {
	s, err := New("w").SetFunction("unit_main").validate(pg15, loader, exportedAll)
	if err != nil {
		t.Fatal(err)
	}
	if s.Library != loader {
		t.Fatalf("default library %q, want the loader %q", s.Library, loader)
	}
	// New(name) no longer implies library = name: a worker named after
	// anything else still loads.
	if _, err := New("unit_main").validate(pg15, loader, exportedAll); err != nil {
		t.Fatal(err)
	}
}

// Name and type end up in pg_stat_activity; invalid UTF-8 there breaks
// convert_to() and clients, so the builder refuses it and names the field.
func TestNonUTF8NameOrTypeRejected(t *testing.T) {
	for _, c := range []struct {
		b             *Builder
		field, reason string
	}{
		{New("w\xff").SetFunction("unit_main"), "name", "byte 1 (0xff) is not valid UTF-8"},
		{New("w").SetType("t\xc3(").SetFunction("unit_main"), "type", "byte 1 (0xc3) is not valid UTF-8"},
	} {
		_, err := c.b.validate(pg15, loader, exportedAll)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field || !strings.Contains(ve.Reason, c.reason) {
			t.Errorf("%s: got %v, want field %q with %q", c.field, err, c.field, c.reason)
		}
	}
	// Valid multi-byte UTF-8 (and U+FFFD itself) is fine, as are bytes in extra.
	if _, err := New("wörker \ufffd").SetType("日本").SetExtra("\xff").SetFunction("unit_main").
		validate(pg15, loader, exportedAll); err != nil {
		t.Fatal(err)
	}
}

func TestValidationNamesFieldAndLimit(t *testing.T) {
	ok := func() *Builder { return New("w").SetLibrary("example").SetFunction("unit_main") }
	cases := []struct {
		b      *Builder
		field  string
		reason string
		loader string
	}{
		{New(strings.Repeat("n", 96)).SetLibrary("example").SetFunction("unit_main"), "name", "96 bytes is too long: PostgreSQL keeps at most 95", ""},
		{New("").SetLibrary("example").SetFunction("unit_main"), "name", "must not be empty", ""},
		{ok().SetType(strings.Repeat("t", 96)), "type", "at most 95", ""},
		{ok().SetExtra(strings.Repeat("e", 128)), "extra", "128 bytes is too long: PostgreSQL keeps at most 127 bytes (BGW_EXTRALEN-1)", ""},
		{ok().SetExtra("a\x00b"), "extra", "NUL byte", ""},
		{ok().SetType("a\x00"), "type", "NUL byte", ""},
		{ok().SetFunction("nope"), "function", `"nope" is not registered`, ""},
		{ok().SetFunction("not-an-identifier"), "function", "not a C identifier", ""},
		{ok().SetFunction(strings.Repeat("f", 96)), "function", "at most 95", ""},
		{ok().SetLibrary("other"), "library", `"other" is not this extension`, ""},
		{ok(), "library", "at most 95 bytes", "/" + strings.Repeat("d", 100) + "/example.so"},
		{ok().SetRestartTime(1500 * time.Millisecond), "restart time", "not a whole number of seconds", ""},
		{ok().SetRestartTime(-2 * time.Second), "restart time", "negative", ""},
		{ok().SetRestartTime(time.Duration(1<<31) * time.Second), "restart time", "limit", ""},
		{ok().EnableSPIAccess().SetStartTime(PostmasterStart), "start time", "cannot start at PostmasterStart", ""},
		{ok().SetStartTime(StartTime(9)), "start time", "is not one of", ""},
		{ok().SetNotifyPID(-1), "notify pid", "negative", ""},
	}
	for _, c := range cases {
		l := loader
		if c.loader != "" {
			l = c.loader
		}
		_, err := c.b.validate(pg15, l, exportedAll)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: want a *ValidationError, got %v", c.field, err)
			continue
		}
		if ve.Field != c.field || !strings.Contains(ve.Reason, c.reason) || ve.Worker != c.b.name {
			t.Errorf("got %q (field %q), want field %q with %q", err, ve.Field, c.field, c.reason)
		}
	}
}

func TestNotExportedByLoader(t *testing.T) {
	_, err := New("w").SetLibrary("example").SetFunction("unit_main").
		validate(pg15, loader, func(string) error { return errors.New("not exported") })
	if err == nil || !strings.Contains(err.Error(), "function") {
		t.Fatalf("want a function error, got %v", err)
	}
}

func TestLoadOutsideOnInit(t *testing.T) {
	if err := New("w").Load(); err == nil || !strings.Contains(err.Error(), "OnInit") {
		t.Fatalf("Load outside OnInit: %v", err)
	}
}

func TestOutsidePostgres(t *testing.T) {
	if err := Transaction(func() error { return nil }); !errors.Is(err, pg.ErrNotInPostgres) {
		t.Fatalf("Transaction outside PostgreSQL: %v", err)
	}
	if WaitLatch(0) || WorkerContinue() {
		t.Fatal("WaitLatch/WorkerContinue must be false outside PostgreSQL")
	}
}

// EnableInterruptible is PostgreSQL 19's BGWORKER_INTERRUPTIBLE: refused,
// naming the field and the version, on older servers and without SPI access.
func TestInterruptible(t *testing.T) {
	pg18 := pg15
	pg18.PGVersionNum = 180006
	pg19 := pg15
	pg19.PGVersionNum = 190000
	var ve *ValidationError
	_, err := New("w").SetFunction("unit_main").EnableSPIAccess().EnableInterruptible().validate(pg18, loader, exportedAll)
	if !errors.As(err, &ve) || ve.Field != "interruptible" || !strings.Contains(ve.Reason, "needs PostgreSQL 19 or later; this server is 18.6") {
		t.Fatalf("on 18: %v", err)
	}
	_, err = New("w").SetFunction("unit_main").EnableShmemAccess().EnableInterruptible().validate(pg19, loader, exportedAll)
	if !errors.As(err, &ve) || ve.Field != "interruptible" || !strings.Contains(ve.Reason, "needs EnableSPIAccess") {
		t.Fatalf("without SPI access: %v", err)
	}
	s, err := New("w").SetFunction("unit_main").EnableSPIAccess().EnableInterruptible().validate(pg19, loader, exportedAll)
	if err != nil || s.Flags != pg.FlagShmemAccess|pg.FlagDatabaseConnection|pg.FlagInterruptible {
		t.Fatalf("on 19: %+v, %v", s, err)
	}
}

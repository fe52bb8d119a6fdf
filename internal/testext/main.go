// Command testext is the pggo extension the integration tests load. Which
// workers it registers is chosen by the server's environment, read in OnInit
// (the init helper sees the environment the server was started with):
//
//	PGGO_TEST_WORKERS   comma-separated scenarios, each registers one worker
//	PGGO_TEST_INVALID   a builder field to get wrong, to test validation
//	PGGO_TEST_RESTART   restart time in seconds for the "panic" worker
//
// Workers report what they saw in the table pggo_results(worker, key, value),
// which the tests read with an ordinary client.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

func init() {
	bgworker.RegisterFunction("testext_spi", spiMain)
	bgworker.RegisterFunction("testext_panic", panicMain)
	bgworker.RegisterFunction("testext_signals", signalsMain)
	bgworker.RegisterFunction("testext_latch", latchMain)
	bgworker.RegisterFunction("testext_thread", threadMain)
	bgworker.RegisterFunction("testext_gopanic", goPanicMain)
	bgworker.RegisterFunction("testext_env", envMain)
	bgworker.RegisterFunction("testext_default_sigterm", defaultSigtermMain)
	bgworker.RegisterFunction("testext_return_error", returnErrorMain)
	pggo.OnInit(register)
}

func register() error {
	for _, s := range strings.Split(os.Getenv("PGGO_TEST_WORKERS"), ",") {
		if s == "" {
			continue
		}
		b := bgworker.New("pggo test " + s).
			SetType("pggo_test_" + s).
			SetLibrary("testext").
			SetFunction("testext_" + s).
			EnableSPIAccess().
			SetExtra("extra for " + s).
			SetArgument(pggo.Int32Datum(42))
		if s == "panic" {
			if r := os.Getenv("PGGO_TEST_RESTART"); r != "" {
				n, _ := strconv.Atoi(r)
				b.SetRestartTime(time.Duration(n) * time.Second)
			}
		}
		if err := b.Load(); err != nil {
			return err
		}
	}
	if field := os.Getenv("PGGO_TEST_INVALID"); field != "" {
		b := bgworker.New("pggo invalid").SetLibrary("testext").SetFunction("testext_spi").EnableSPIAccess()
		switch field {
		case "name":
			b = bgworker.New(strings.Repeat("n", 96)).SetLibrary("testext").SetFunction("testext_spi")
		case "type":
			b.SetType(strings.Repeat("t", 96))
		case "extra":
			b.SetExtra(strings.Repeat("e", 128))
		case "nul":
			b.SetExtra("a\x00b")
		case "function":
			// Not a literal: pggo build refuses a literal that names no
			// registered function, and this case tests the server's check.
			unregistered := "not_registered"
			b.SetFunction(unregistered)
		case "utf8":
			b.SetType("pggo_\xff")
		case "library":
			b.SetLibrary("some_other_library")
		case "restart":
			b.SetRestartTime(1500 * time.Millisecond)
		case "start":
			b.SetStartTime(bgworker.PostmasterStart)
		case "ignored":
			// The hook ignores Load's error: the server must still refuse.
			b.SetExtra(strings.Repeat("e", 200))
			_ = b.Load()
			return nil
		case "oninit":
			return errors.New("the test asked OnInit to fail")
		case "dynamic_in_init":
			_, err := b.LoadDynamic()
			return err
		}
		return b.Load()
	}
	return nil
}

// record stores one observation in pggo_results, in its own transaction.
func record(key string, value any) error {
	return bgworker.Transaction(func() error {
		_, err := spi.Exec("INSERT INTO pggo_results(worker, key, value) VALUES ($1, $2, $3)",
			bgworker.Type(), key, fmt.Sprint(value))
		return err
	})
}

func connect() error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	return bgworker.Transaction(func() error {
		// Workers start together; CREATE TABLE IF NOT EXISTS races without a lock.
		if _, err := spi.Exec("SELECT pg_advisory_xact_lock($1)", 4242); err != nil {
			return err
		}
		if _, err := spi.Exec("CREATE TABLE IF NOT EXISTS pggo_wakes(at timestamptz)"); err != nil {
			return err
		}
		_, err := spi.Exec(`CREATE TABLE IF NOT EXISTS pggo_results(
			worker text, key text, value text, at timestamptz DEFAULT clock_timestamp())`)
		return err
	})
}

// idle waits until the worker is told to stop, then returns nil (exit 0).
func idle() error {
	for bgworker.WaitLatch(time.Minute) {
	}
	return nil
}

func errText(err error) string {
	var pe *pggo.Error
	if errors.As(err, &pe) {
		return pe.SQLState + " " + pe.Message
	}
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// spiMain: commit, a failing statement, a panic, then commit again.
func spiMain(arg pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	record("identity", fmt.Sprintf("%s|%s|%s|%d", bgworker.Name(), bgworker.Type(), bgworker.Extra(), arg.Int32()))
	err := bgworker.Transaction(func() error {
		_, err := spi.Exec("CREATE TABLE IF NOT EXISTS spi_rows(v int PRIMARY KEY, note text)")
		if err != nil {
			return err
		}
		_, err = spi.Exec("INSERT INTO spi_rows VALUES ($1, $2)", 1, "first")
		return err
	})
	record("first", errText(err))

	err = bgworker.Transaction(func() error {
		if _, err := spi.Exec("INSERT INTO spi_rows VALUES ($1, $2)", 2, "rolled back by error"); err != nil {
			return err
		}
		_, err := spi.Exec("SELECT 1/0")
		return err
	})
	record("failing", errText(err))

	err = bgworker.Transaction(func() error {
		if _, err := spi.Exec("INSERT INTO spi_rows VALUES ($1, $2)", 3, "rolled back by panic"); err != nil {
			return err
		}
		panic("panic inside Transaction")
	})
	record("panic", errText(err))

	err = bgworker.Transaction(func() error {
		// The first error is swallowed: the transaction must still roll back.
		spi.Exec("INSERT INTO spi_rows VALUES ($1, $2)", 1, "duplicate")
		_, err := spi.Exec("INSERT INTO spi_rows VALUES ($1, $2)", 4, "after swallowed error")
		return err
	})
	record("swallowed", errText(err))

	err = bgworker.Transaction(func() error {
		n, err := spi.Exec("INSERT INTO spi_rows VALUES ($1, $2), ($3, $4)", 5, "second", 6, nil)
		if err != nil {
			return err
		}
		var count int64
		var notes []string
		rows, err := spi.Query("SELECT v, note FROM spi_rows ORDER BY v")
		if err != nil {
			return err
		}
		for rows.Next() {
			var v int32
			var note *string
			if err := rows.Scan(&v, &note); err != nil {
				return err
			}
			count++
			if note == nil {
				notes = append(notes, fmt.Sprintf("%d:NULL", v))
			} else {
				notes = append(notes, fmt.Sprintf("%d:%s", v, *note))
			}
		}
		var missing int
		if err := spi.QueryRow("SELECT v FROM spi_rows WHERE v = $1", -1).Scan(&missing); !errors.Is(err, spi.ErrNoRows) {
			return fmt.Errorf("expected ErrNoRows, got %v", err)
		}
		_, err = spi.Exec("INSERT INTO pggo_results(worker, key, value) VALUES ($1, 'rows', $2)",
			bgworker.Type(), fmt.Sprintf("inserted=%d count=%d %s", n, count, strings.Join(notes, ",")))
		return err
	})
	record("last", errText(err))
	return idle()
}

// panicMain panics at once; with a restart time it is restarted.
func panicMain(pggo.Datum) error {
	panic(fmt.Sprintf("testext boom in pid %d", os.Getpid()))
}

// returnErrorMain returns an error at once.
func returnErrorMain(pggo.Datum) error {
	return errors.New("testext returned this error")
}

// signalsMain reports SIGHUPs and returns nil on SIGTERM.
func signalsMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	record("ready", os.Getpid())
	for bgworker.WaitLatch(time.Minute) {
		if bgworker.SighupReceived() {
			record("sighup", fmt.Sprintf("first=true second=%v", bgworker.SighupReceived()))
		}
	}
	bgworker.Log("testext signals worker: leaving after SIGTERM")
	return nil
}

// latchMain records every wake-up while three goroutines keep Go busy.
func latchMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	// Only SetLatch (and SIGTERM) should wake this worker: no SIGHUP wake-ups.
	bgworker.AttachSignalHandlers(bgworker.SIGTERM)
	stop := make(chan struct{})
	defer close(stop)
	for i := 0; i < 3; i++ {
		bgworker.Go(func() { spin(stop) })
	}
	record("ready", os.Getpid())
	for bgworker.WaitLatch(time.Minute) {
		if err := bgworker.Transaction(func() error {
			_, err := spi.Exec("INSERT INTO pggo_wakes(at) VALUES (clock_timestamp())")
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// spin burns CPU with function calls (so the GC can still stop it).
func spin(stop chan struct{}) {
	x := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		for i := 0; i < 10000; i++ {
			x = work(x, i)
		}
	}
}

//go:noinline
func work(x, i int) int { return x*31 + i }

// threadMain calls PostgreSQL from another goroutine.
func threadMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	res := make(chan string)
	go func() {
		err := bgworker.Transaction(func() error { return nil })
		_, err2 := spi.Exec("SELECT 1")
		res <- fmt.Sprintf("transaction=%v|exec=%v|wrong=%v", err, err2,
			errors.Is(err, pggo.ErrWrongThread) && err2 != nil)
	}()
	record("other goroutine", <-res)
	return idle()
}

// goPanicMain panics in a goroutine started with bgworker.Go.
func goPanicMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	record("ready", os.Getpid())
	bgworker.Go(func() { panic("testext goroutine boom") })
	for bgworker.WaitLatch(time.Minute) {
	}
	return errors.New("WaitLatch returned false instead of ending the worker")
}

// envMain reports the environment seen by os.Getenv.
func envMain(pggo.Datum) error {
	if err := connect(); err != nil {
		return err
	}
	record("env", os.Getenv("PGGO_TEST_ENV"))
	return idle()
}

// defaultSigtermMain never attaches SIGTERM: PostgreSQL's die() applies.
func defaultSigtermMain(pggo.Datum) error {
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	for {
		bgworker.WaitLatch(time.Minute)
	}
}

func main() {}

package bgworker_test

import (
	"fmt"
	"os"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

// A static worker, registered at server start, that records a tick every
// ten seconds until it is told to stop. (Examples here compile with the
// docs; they run inside PostgreSQL, so they have no Output.)
func Example() {
	bgworker.RegisterFunction("ticker_main", func(arg pggo.Datum) error {
		bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)
		if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
			return err
		}
		for bgworker.WaitLatch(10 * time.Second) {
			if err := bgworker.Transaction(func() error {
				_, err := spi.Exec("INSERT INTO ticks(at) VALUES (now())")
				return err
			}); err != nil {
				return err // ERROR in the log, exit code 1, restarted after 5 s
			}
		}
		return nil // SIGTERM: exit code 0
	})
	pggo.OnInit(func() error {
		return bgworker.New("ticker").
			SetFunction("ticker_main").
			EnableSPIAccess().
			SetRestartTime(5 * time.Second).
			Load()
	})
}

// Launching a dynamic worker and waiting for it, from a SQL function or
// another worker.
func ExampleBuilder_LoadDynamic() {
	w, err := bgworker.New("one-off job").
		SetFunction("job_main").
		EnableSPIAccess().
		SetArgument(pggo.Int32Datum(42)).
		SetNotifyPID(os.Getpid()).
		LoadDynamic()
	if err != nil {
		fmt.Println(err) // SQLSTATE 53400 when no max_worker_processes slot is free
		return
	}
	pid, err := w.WaitForStartup()
	fmt.Println(pid, err)
	fmt.Println(w.WaitForShutdown())
}

// Goroutines started with Go may compute, not call PostgreSQL: they hand
// results to the worker's goroutine, which waits on its latch.
func ExampleGo() {
	results := make(chan int, 1)
	bgworker.Go(func() {
		results <- 6 * 7 // a panic here would end the worker with exit code 1
		bgworker.Wake()
	})
	for bgworker.WaitLatch(time.Minute) {
		select {
		case r := <-results:
			bgworker.Logf("result: %d", r)
			return
		default:
		}
	}
}

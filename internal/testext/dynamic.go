package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
)

// Dynamic workers, launched from SQL through fmgr functions.
func init() {
	bgworker.RegisterFunction("testext_dyn_sleep", dynSleep)
	bgworker.RegisterFunction("testext_dyn_exit", dynExit)
	bgworker.RegisterFunction("testext_dyn_error", dynError)
	bgworker.RegisterFunction("testext_dyn_late", dynLate)
	fmgr.Register("testext_launch", "(fn text, notify bool, restart_seconds int4) RETURNS int4", launch)
	fmgr.Register("testext_untracked", "() RETURNS text", untracked)
	fmgr.Register("testext_launch_cycle", "() RETURNS int8", launchCycle)
	fmgr.Register("testext_terminate_all", "() RETURNS int4", terminateAll)
	fmgr.Register("testext_add", "(a int4, b int4) RETURNS int4", add)
	fmgr.Register("testext_fail", "(how text) RETURNS text", fail)
}

// launched keeps this backend's dynamic workers for testext_terminate_all.
var launched []*bgworker.DynamicWorker

// dynBuilder describes testext_dyn_<fn>, named after its restart time so the
// log tells the runs of different launches apart.
func dynBuilder(fn string, restart int32) *bgworker.Builder {
	b := bgworker.New(fmt.Sprintf("pggo dynamic %s r%d", fn, restart))
	if restart > 0 {
		b.SetRestartTime(time.Duration(restart) * time.Second)
	}
	return b.SetType("pggo_dyn").
		SetFunction("testext_dyn_" + fn).
		EnableSPIAccess().
		SetExtra(strconv.FormatInt(time.Now().UnixNano(), 10))
}

// launch starts testext_dyn_<fn>; with notify it waits for the start and
// returns the pid, else it returns NULL.
func launch(args *fmgr.Args) (any, error) {
	var fn string
	var notify bool
	var restart int32
	if err := args.Scan(&fn, &notify, &restart); err != nil {
		return nil, err
	}
	b := dynBuilder(fn, restart)
	if notify {
		b.SetNotifyPID(os.Getpid())
	}
	w, err := b.LoadDynamic()
	if err != nil {
		var pgErr *pggo.Error
		// A full server must match bgworker.ErrNoSlot and stay a *pggo.Error.
		if errors.As(err, &pgErr) && pgErr.SQLState == "53400" && !errors.Is(err, bgworker.ErrNoSlot) {
			return nil, errors.New("testext: a 53400 error that does not match bgworker.ErrNoSlot")
		}
		return nil, err
	}
	launched = append(launched, w)
	if !notify {
		return nil, nil
	}
	return w.WaitForStartup()
}

// untracked waits for a worker registered without a notify pid.
func untracked(*fmgr.Args) (any, error) {
	w, err := dynBuilder("exit", 0).LoadDynamic()
	if err != nil {
		return nil, err
	}
	_, err = w.WaitForStartup()
	var se *bgworker.StatusError
	if !errors.As(err, &se) {
		return nil, fmt.Errorf("want a *StatusError, got %v", err)
	}
	return fmt.Sprintf("%s notify=%d: %v", se.Status, se.NotifyPID, err), nil
}

// launchCycle launches a worker that exits at once, waits for its start and
// its exit, and returns the microseconds from LoadDynamic to its start.
func launchCycle(*fmgr.Args) (any, error) {
	start := time.Now()
	w, err := dynBuilder("exit", 0).SetNotifyPID(os.Getpid()).LoadDynamic()
	if err != nil {
		return nil, err
	}
	if _, err := w.WaitForStartup(); err != nil {
		// A worker this fast may have exited already: it started all the same.
		var se *bgworker.StatusError
		if !errors.As(err, &se) || se.Status != bgworker.Stopped {
			return nil, err
		}
	}
	took := time.Since(start)
	if err := w.WaitForShutdown(); err != nil {
		return nil, err
	}
	return took.Microseconds(), nil
}

// terminateAll stops every worker this backend launched and waits for them.
func terminateAll(*fmgr.Args) (any, error) {
	n := 0
	for _, w := range launched {
		t := w.Terminate()
		if err := t.WaitForShutdown(); err != nil {
			var se *bgworker.StatusError
			if errors.As(err, &se) && se.Status == bgworker.Untracked {
				continue
			}
			return nil, err
		}
		n++
	}
	launched = nil
	return n, nil
}

func add(args *fmgr.Args) (any, error) {
	var a, b *int32
	if err := args.Scan(&a, &b); err != nil {
		return nil, err
	}
	if a == nil || b == nil {
		return nil, nil
	}
	return int64(*a) + int64(*b), nil
}

func fail(args *fmgr.Args) (any, error) {
	var how string
	if err := args.Scan(&how); err != nil {
		return nil, err
	}
	switch how {
	case "panic":
		panic("testext fmgr panic")
	case "pgerror":
		return nil, &pggo.Error{SQLState: "22023", Message: "testext says invalid parameter"}
	}
	return nil, errors.New("testext fmgr error")
}

func dynSleep(pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGTERM)
	// Connected workers show in pg_stat_activity.
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	for bgworker.WaitLatch(time.Minute) {
	}
	return nil
}

// dynLate connects to a database only after a SIGHUP (pg_reload_conf()):
// until then it runs but is not in pg_stat_activity, which shows what
// WaitForStartup does and does not wait for.
func dynLate(pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)
	// Until now SIGHUP was ignored (PostgreSQL's default in a worker): the
	// test waits for this line before it sends one.
	bgworker.Logf("testext late worker %d: waiting for SIGHUP to connect", os.Getpid())
	for !bgworker.SighupReceived() {
		if !bgworker.WaitLatch(time.Minute) {
			return nil
		}
	}
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	for bgworker.WaitLatch(time.Minute) {
	}
	return nil
}

func dynExit(pggo.Datum) error {
	if sent, err := strconv.ParseInt(bgworker.Extra(), 10, 64); err == nil {
		bgworker.Logf("testext dynamic worker %q: first Go line %d us after LoadDynamic", bgworker.Name(), (time.Now().UnixNano()-sent)/1000)
	}
	return nil
}

func dynError(pggo.Datum) error {
	return fmt.Errorf("testext dynamic worker error (%s)", bgworker.Name())
}

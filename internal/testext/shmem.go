package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
	"github.com/pggo/pggo/shmem"
)

// Shared state for the shmem tests (TestSharedMemory, TestMessageQueues).
type shmCounters struct {
	Atomic    atomic.Int64
	Plain     int64 // only under the region's lock
	InitCount atomic.Int32
	Epoch     int64
	DrainAt   atomic.Int64 // unix ns: when the queue test's receiver began to read
}

var shmCtr = shmem.Declare[shmCounters]("testext.counters", func(c *shmCounters) {
	c.InitCount.Add(1)
	c.Epoch = time.Now().UnixNano()
})

// raceRegion's init is slow, so that the racing workers queue on its lock.
type raceRegion struct {
	InitCount   atomic.Int32
	Attached    atomic.Int32
	Initialiser int32
}

var shmRace = shmem.Declare[raceRegion]("testext.race", func(r *raceRegion) {
	r.InitCount.Add(1)
	r.Initialiser = int32(os.Getpid())
	time.Sleep(500 * time.Millisecond)
})

var shmLock = shmem.NewLock("testext.lock")

// holdRegion: one worker holds its lock forever, another waits for it
// (TestSharedMemoryLockWaitPostmasterDeath).
type holdRegion struct {
	Holder  atomic.Int32 // pid of the worker holding the lock
	Waiting atomic.Int32 // pid of the worker about to wait
	Got     atomic.Int32 // pid of a worker that got the lock after waiting
}

var shmHold = shmem.Declare[holdRegion]("testext.hold", nil)

// Types that must be refused (PGGO_TEST_BADREGION).
type badString struct {
	N     int64
	Inner struct{ Name string }
}

type badPointer struct {
	Count atomic.Int64
	Next  *badPointer
}

func init() {
	bgworker.RegisterFunction("testext_shm_incr", shmIncr)
	bgworker.RegisterFunction("testext_shm_race", shmRaceMain)
	bgworker.RegisterFunction("testext_shm_hold", shmHoldMain)
	bgworker.RegisterFunction("testext_shm_wait", shmWaitMain)
	bgworker.RegisterFunction("testext_mq_sender", mqSender)
	bgworker.RegisterFunction("testext_mq_receiver", mqReceiver)
	fmgr.Register("testext_shm_launch", "(fn text, n int4, count int4) RETURNS int4", shmLaunch)
	fmgr.Register("testext_shm_state", "(which text) RETURNS text", shmState)
	fmgr.Register("testext_shm_start", "(fn text) RETURNS int4", shmStart)
	fmgr.Register("testext_mq_stream", "(n int8, size int4) RETURNS text", mqStream)
	fmgr.Register("testext_mq_kill", "(size int4) RETURNS text", mqKill)
	fmgr.Register("testext_mq_full", "() RETURNS text", mqFull)
	pggo.OnInit(func() error {
		// Declare in OnInit reserves the region too; a bad type must make
		// the server refuse to start, naming the field.
		switch os.Getenv("PGGO_TEST_BADREGION") {
		case "string":
			shmem.Declare[badString]("testext.bad", nil)
		case "pointer":
			shmem.Declare[badPointer]("testext.bad", nil)
		case "name":
			shmem.Declare[int64]("testext bad name", nil)
		}
		return nil
	})
}

// shmIncr adds n to the atomic and, under the lock, to the plain counter.
func shmIncr(arg pggo.Datum) error {
	c, err := shmCtr.Get()
	if err != nil {
		return err
	}
	n := int(arg)
	for i := 0; i < n; i++ {
		c.Atomic.Add(1)
		if err := shmCtr.Lock(shmem.Exclusive, func(c *shmCounters) { c.Plain++ }); err != nil {
			return err
		}
	}
	// The named lock on its own, and a panic inside Lock releases it.
	func() {
		defer func() { recover() }()
		shmLock.Lock(shmem.Exclusive, func() { panic("inside Lock") })
	}()
	return shmLock.Lock(shmem.Shared, func() {})
}

// shmRaceMain connects (to show in pg_stat_activity), waits for the start
// time in extra, then attaches to the race region.
func shmRaceMain(pggo.Datum) error {
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	at, _ := strconv.ParseInt(bgworker.Extra(), 10, 64)
	time.Sleep(time.Until(time.Unix(0, at)))
	r, err := shmRace.Get()
	if err != nil {
		return err
	}
	r.Attached.Add(1)
	return nil
}

// shmHoldMain takes the hold region's lock and never lets it go, not even
// when the postmaster dies: only SIGKILL ends it.
func shmHoldMain(pggo.Datum) error {
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	return shmHold.Lock(shmem.Exclusive, func(r *holdRegion) {
		r.Holder.Store(int32(os.Getpid()))
		for {
			time.Sleep(time.Hour)
		}
	})
}

// shmWaitMain waits for the hold region's lock.
func shmWaitMain(pggo.Datum) error {
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	r, err := shmHold.Get()
	if err != nil {
		return err
	}
	r.Waiting.Store(int32(os.Getpid()))
	return shmHold.Lock(shmem.Exclusive, func(r *holdRegion) { r.Got.Store(int32(os.Getpid())) })
}

// shmStart starts one worker testext_shm_<fn> and returns its pid.
func shmStart(args *fmgr.Args) (any, error) {
	var fn string
	if err := args.Scan(&fn); err != nil {
		return nil, err
	}
	if fn != "hold" && fn != "wait" {
		return nil, fmt.Errorf("no such shm worker %q", fn)
	}
	w, err := shmBuilder(fn).LoadDynamic()
	if err != nil {
		return nil, err
	}
	pid, err := w.WaitForStartup()
	return int32(pid), err
}

func shmBuilder(fn string) *bgworker.Builder {
	return bgworker.New("pggo shm " + fn).SetType("pggo_shm_" + fn).SetFunction("testext_shm_" + fn).
		EnableSPIAccess().SetNotifyPID(os.Getpid())
}

// shmLaunch starts count workers testext_shm_<fn>(n) and waits for all to end.
func shmLaunch(args *fmgr.Args) (any, error) {
	var fn string
	var n, count int32
	if err := args.Scan(&fn, &n, &count); err != nil {
		return nil, err
	}
	start := time.Now().Add(time.Second).UnixNano()
	var ws []*bgworker.DynamicWorker
	for i := int32(0); i < count; i++ {
		var b *bgworker.Builder
		switch fn {
		case "incr":
			b = shmBuilder("incr").SetArgument(pggo.Int32Datum(n))
		case "race":
			b = shmBuilder("race").SetExtra(strconv.FormatInt(start, 10))
		default:
			return nil, fmt.Errorf("no such shm worker %q", fn)
		}
		w, err := b.LoadDynamic()
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		if err := w.WaitForShutdown(); err != nil {
			return nil, err
		}
	}
	return count, nil
}

func shmState(args *fmgr.Args) (any, error) {
	var which string
	if err := args.Scan(&which); err != nil {
		return nil, err
	}
	switch which {
	case "counters":
		var out string
		err := shmCtr.Lock(shmem.Shared, func(c *shmCounters) {
			out = fmt.Sprintf("atomic=%d plain=%d init=%d epoch=%d", c.Atomic.Load(), c.Plain, c.InitCount.Load(), c.Epoch)
		})
		return out, err
	case "race":
		r, err := shmRace.Get()
		if err != nil {
			return nil, err
		}
		return fmt.Sprintf("init=%d attached=%d initialiser=%d", r.InitCount.Load(), r.Attached.Load(), r.Initialiser), nil
	case "hold":
		r, err := shmHold.Get()
		if err != nil {
			return nil, err
		}
		return fmt.Sprintf("holder=%d waiting=%d got=%d", r.Holder.Load(), r.Waiting.Load(), r.Got.Load()), nil
	case "lock_hold":
		// Waits for the hold region's lock in a backend (a query cancel
		// must end the wait).
		return "got", shmHold.Lock(shmem.Exclusive, func(*holdRegion) {})
	case "bump":
		c, err := shmCtr.Get()
		if err != nil {
			return nil, err
		}
		return fmt.Sprint(c.Atomic.Add(1)), nil
	case "nested":
		// Nesting the same lock is an error, not a self-deadlock.
		var inner error
		err := shmCtr.Lock(shmem.Exclusive, func(*shmCounters) {
			inner = shmCtr.Lock(shmem.Shared, func(*shmCounters) {})
		})
		return fmt.Sprintf("outer=%v inner=%v", err, inner), nil
	case "goroutine":
		done := make(chan error)
		go func() { done <- shmCtr.Lock(shmem.Shared, func(*shmCounters) {}) }()
		return fmt.Sprint(errors.Is(<-done, pggo.ErrWrongThread)), nil
	}
	return nil, fmt.Errorf("unknown state %q", which)
}

// mqSender attaches to the queue in its argument and sends the messages
// extra asks for: "n size", message i starting with i (8 bytes, LE).
func mqSender(arg pggo.Datum) error {
	var n int64
	var size int
	fmt.Sscanf(bgworker.Extra(), "%d %d", &n, &size)
	q, err := shmem.AttachQueue(shmem.HandleFromDatum(arg), shmem.Sender)
	if err != nil {
		return err
	}
	defer q.Close()
	msg := make([]byte, max(size, 8))
	for i := range msg[8:] {
		msg[8+i] = byte(i)
	}
	for i := int64(0); n < 0 || i < n; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		if err := q.Send(msg); err != nil {
			if errors.Is(err, shmem.ErrDetached) {
				return nil
			}
			return err
		}
	}
	return nil
}

// mqReceiver waits extra milliseconds, records when it starts, and reads
// the queue in its argument until the sender detaches.
func mqReceiver(arg pggo.Datum) error {
	delay, _ := strconv.Atoi(bgworker.Extra())
	q, err := shmem.AttachQueue(shmem.HandleFromDatum(arg), shmem.Receiver)
	if err != nil {
		return err
	}
	defer q.Close()
	c, err := shmCtr.Get()
	if err != nil {
		return err
	}
	time.Sleep(time.Duration(delay) * time.Millisecond)
	c.DrainAt.Store(time.Now().UnixNano())
	for {
		if _, err := q.Receive(); err != nil {
			if errors.Is(err, shmem.ErrDetached) {
				return nil
			}
			return err
		}
	}
}

func mqLaunch(fn string, q *shmem.Queue, extra string) (*bgworker.DynamicWorker, error) {
	w, err := bgworker.New("pggo mq " + fn).SetType("pggo_mq_" + fn).SetFunction("testext_mq_" + fn).
		EnableShmemAccess().SetArgument(q.Handle().Datum()).SetExtra(extra).
		SetNotifyPID(os.Getpid()).LoadDynamic()
	if err != nil {
		return nil, err
	}
	return w, q.SetWorker(w)
}

// mqStream receives n messages of size bytes from a worker and checks
// their order; then the worker's exit must read as ErrDetached.
func mqStream(args *fmgr.Args) (any, error) {
	var n int64
	var size int32
	if err := args.Scan(&n, &size); err != nil {
		return nil, err
	}
	q, err := shmem.CreateQueue(65536, shmem.Receiver)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	if _, err := mqLaunch("sender", q, fmt.Sprintf("%d %d", n, size)); err != nil {
		return nil, err
	}
	start := time.Now()
	var bytes int64
	for i := int64(0); i < n; i++ {
		msg, err := q.Receive()
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		if len(msg) != int(max(size, 8)) {
			return nil, fmt.Errorf("message %d has %d bytes, want %d", i, len(msg), size)
		}
		if got := int64(binary.LittleEndian.Uint64(msg)); got != i {
			return nil, fmt.Errorf("message %d carries %d: out of order", i, got)
		}
		bytes += int64(len(msg))
	}
	elapsed := time.Since(start)
	_, err = q.Receive()
	return fmt.Sprintf("ok n=%d after=%v ms=%d msgs_per_s=%.0f mb_per_s=%.1f", n, errors.Is(err, shmem.ErrDetached),
		elapsed.Milliseconds(), float64(n)/elapsed.Seconds(), float64(bytes)/elapsed.Seconds()/1e6), nil
}

// mqKill terminates the sending worker mid-stream and measures how long the
// receiver takes to learn it.
func mqKill(args *fmgr.Args) (any, error) {
	var size int32
	if err := args.Scan(&size); err != nil {
		return nil, err
	}
	q, err := shmem.CreateQueue(65536, shmem.Receiver)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	w, err := mqLaunch("sender", q, fmt.Sprintf("-1 %d", size))
	if err != nil {
		return nil, err
	}
	for i := 0; i < 10000; i++ {
		if _, err := q.Receive(); err != nil {
			return nil, fmt.Errorf("before the kill, message %d: %w", i, err)
		}
	}
	w.Terminate()
	killed := time.Now()
	received := 0
	for {
		_, err := q.Receive()
		if err == nil {
			received++
			continue
		}
		if !errors.Is(err, shmem.ErrDetached) {
			return nil, err
		}
		return fmt.Sprintf("detached after_kill_ms=%d received_after=%d", time.Since(killed).Milliseconds(), received), nil
	}
}

// mqFull fills a queue nobody reads yet, then starts a receiver that waits
// 500 ms before draining: the blocked Send must return only after that.
func mqFull(*fmgr.Args) (any, error) {
	q, err := shmem.CreateQueue(16384, shmem.Sender)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	msg := make([]byte, 1024)
	fit := 0
	for {
		ok, err := q.TrySend(msg)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		fit++
		if fit > 100 {
			return nil, errors.New("a 16 kB queue took 100 kB without blocking")
		}
	}
	// TrySend may have written part of the message that did not fit: the
	// first Send below, with the same bytes, finishes it.
	c, err := shmCtr.Get()
	if err != nil {
		return nil, err
	}
	c.DrainAt.Store(0)
	w, err := mqLaunch("receiver", q, "500")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var sendErr error
	for i := 0; i < 64 && sendErr == nil; i++ {
		sendErr = q.Send(msg)
	}
	sent := time.Now()
	if sendErr != nil {
		return nil, sendErr
	}
	q.Close()
	if err := w.WaitForShutdown(); err != nil {
		return nil, err
	}
	drain := time.Unix(0, c.DrainAt.Load())
	return fmt.Sprintf("fit=%d blocked_ms=%d drain_after_ms=%d sent_after_drain=%v", fit,
		sent.Sub(start).Milliseconds(), drain.Sub(start).Milliseconds(), !sent.Before(drain)), nil
}

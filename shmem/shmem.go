// Package shmem shares state between the processes of a pggo extension:
// named shared memory regions holding a fixed-size Go type, their locks,
// and message queues between a backend and a dynamic worker.
//
// Every PostgreSQL process (worker or backend) has its own Go runtime and
// its own Go globals; only memory PostgreSQL maps into all of them is
// shared. A region is declared once, in a package-level variable:
//
//	type Counters struct {
//		Ticks atomic.Int64 // atomics work across processes
//		Last  [8]int64     // plain fields: under the region's lock
//	}
//
//	var counters = shmem.Declare[Counters]("myext.counters", func(c *Counters) {
//		c.Ticks.Store(100) // runs once per server start, in the first process that attaches
//	})
//
// The postmaster never runs Go, so the init helper reports the declared
// regions and the loader reserves them when the server starts, when the
// extension is in shared_preload_libraries; the postmaster only zeroes
// them. A library loaded later (CREATE EXTENSION, a function call) gets
// its regions from PostgreSQL 17's DSM registry instead; before 17 that is
// an error saying the library must be preloaded. The first process that uses a region from Go runs its init function,
// under the region's lock; every later process attaches to the initialised
// region. After a crash the postmaster re-creates shared memory, and the
// region is initialised once more, by the first process that uses it.
//
// T must be plain memory: numbers, bools, fixed-size arrays, structs of
// these, and the sync/atomic integer types. Pointers, strings, slices, maps,
// interfaces, channels and functions hold addresses in one process's Go
// heap, meaningless in another, and are refused with an error naming the
// field (the server then refuses to start, saying so).
package shmem

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
)

// LockMode is how Region.Lock takes the region's LWLock.
type LockMode int

const (
	// Shared lets any number of holders in, excluding Exclusive ones.
	Shared LockMode = LockMode(pg.LockShared)
	// Exclusive admits one holder.
	Exclusive LockMode = LockMode(pg.LockExclusive)
)

// Region is a named region of shared memory holding one T.
type Region[T any] struct {
	spec    pg.RegionSpec
	init    func(*T)
	declErr error

	mu    sync.Mutex // serialises this process's attach
	ptr   atomic.Pointer[T]
	index int
	held  atomic.Bool // this process holds the lock (set on the main thread)
}

// Declare declares the region name holding a T, initialised by init (nil:
// all zero). Call it in a package-level variable of the extension, so that
// it runs in every process (a declaration made only in OnInit reserves the
// memory, but worker processes do not see the variable). A T that cannot
// live in shared memory, or a bad name, makes the server refuse to start
// with the reason; the region's methods return the same error.
//
// Names have up to 40 bytes of letters, digits, '_', '.' and '-'; prefix
// them with the extension's name: the name is also the lock's wait event.
func Declare[T any](name string, init func(*T)) *Region[T] {
	t := reflect.TypeFor[T]()
	r := &Region[T]{spec: pg.RegionSpec{Name: name, Size: uint64(t.Size()), Align: uint32(max(t.Align(), 1))}, init: init}
	err := CheckType(t)
	if err == nil {
		err = pg.DeclareRegion(r.spec)
	}
	if err != nil {
		r.declErr = fmt.Errorf("shmem.Declare(%q): %w", name, err)
		// A package-level Declare runs before OnInit; this makes the
		// init helper fail, so the server refuses to start.
		pg.FailStatic(r.declErr)
	}
	return r
}

// CheckType reports why values of t cannot live in shared memory, naming
// the offending field, or nil if they can.
func CheckType(t reflect.Type) error {
	return checkType(t, t.String())
}

func checkType(t reflect.Type, path string) error {
	if t.PkgPath() == "sync" || t.PkgPath() == "internal/sync" {
		return fmt.Errorf("%s has type %s, which works only inside one process: use Region.Lock or sync/atomic", path, t)
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return nil
	case reflect.Array:
		return checkType(t.Elem(), path+"[]")
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if err := checkType(f.Type, path+"."+f.Name); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		return fmt.Errorf("%s is a string: its bytes live in one process's Go heap; use a fixed-size byte array", path)
	case reflect.Slice:
		return fmt.Errorf("%s is a slice (%s): its elements live in one process's Go heap; use a fixed-size array", path, t)
	}
	return fmt.Errorf("%s is a %s (%s): it holds an address that means nothing in another process", path, t.Kind(), t)
}

// Name is the region's name.
func (r *Region[T]) Name() string { return r.spec.Name }

// Get attaches this process to the region (running its init function if
// no process has yet) and returns its data. Attaching calls PostgreSQL, so
// the first call must come from the worker's (or SQL function's)
// goroutine; the pointer stays valid for the life of the process and may
// be used from any goroutine for atomics. Plain fields need Lock.
func (r *Region[T]) Get() (*T, error) {
	if p := r.ptr.Load(); p != nil {
		return p, nil
	}
	return r.attach()
}

func (r *Region[T]) attach() (*T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.ptr.Load(); p != nil {
		return p, nil
	}
	if r.declErr != nil {
		return nil, r.declErr
	}
	data, initialised, index, err := pg.RegionAttach(r.spec)
	if err != nil {
		return nil, err
	}
	p := (*T)(data)
	if atomic.LoadUint32(initialised) == 0 {
		if err := pg.RegionLock(index, pg.LockExclusive); err != nil {
			return nil, err
		}
		err := r.runInit(p, initialised)
		if rerr := pg.RegionLock(index, pg.LockRelease); err == nil {
			err = rerr
		}
		if err != nil {
			return nil, err
		}
	}
	r.index = index
	r.ptr.Store(p)
	return p, nil
}

// runInit runs under the exclusive lock: whoever gets it first initialises;
// the others see the word set. A panic leaves the word clear, so the next
// process to attach tries again.
func (r *Region[T]) runInit(p *T, initialised *uint32) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("shmem: the init function of region %q panicked: %v", r.spec.Name, v)
		}
	}()
	if atomic.LoadUint32(initialised) != 0 {
		return nil
	}
	if r.init != nil {
		r.init(p)
	}
	atomic.StoreUint32(initialised, 1)
	return nil
}

// Lock runs fn with the region's LWLock held in mode. The lock is released
// when fn returns or panics (the panic goes on), and by PostgreSQL if an
// ERROR occurs meanwhile. LWLocks are for short critical sections: while
// one is held, interrupts (query cancel, SIGTERM's die) wait. A waiter
// sleeps on a latch, not on LWLockAcquire's semaphore: it exits if the
// postmaster dies, and a query cancel ends its wait with an error. Do not
// nest Locks of the same region (that is an error, not a deadlock), and
// call Lock only from the worker's (or SQL function's) goroutine:
// elsewhere it returns pggo.ErrWrongThread.
func (r *Region[T]) Lock(mode LockMode, fn func(*T)) error {
	if mode != Shared && mode != Exclusive {
		return fmt.Errorf("shmem: lock mode %d is neither Shared nor Exclusive", mode)
	}
	if pg.Available() && !pg.OnWorkerThread() {
		return pggo.ErrWrongThread
	}
	p, err := r.Get()
	if err != nil {
		return err
	}
	// Checked here, not only in C: an ERROR in a SQL function would be
	// re-raised when it returns, and this is a Go mistake to report in Go.
	if r.held.Load() {
		return fmt.Errorf("shmem: region %q is already locked by this process: LWLocks do not nest", r.spec.Name)
	}
	if err := pg.RegionLock(r.index, int(mode)); err != nil {
		return err
	}
	r.held.Store(true)
	defer func() {
		r.held.Store(false)
		pg.RegionLock(r.index, pg.LockRelease)
	}()
	fn(p)
	return nil
}

// LWLock is a named lock of its own: a region with no data.
type LWLock struct{ r *Region[struct{}] }

// NewLock declares the named LWLock name (in a package-level variable, as
// for Declare); its tranche has the same name, shown as the wait event.
func NewLock(name string) *LWLock {
	return &LWLock{Declare[struct{}](name, nil)}
}

// Lock runs fn holding the lock in mode, with Region.Lock's rules.
func (l *LWLock) Lock(mode LockMode, fn func()) error {
	return l.r.Lock(mode, func(*struct{}) { fn() })
}

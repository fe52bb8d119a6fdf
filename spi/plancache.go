package spi

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
	"github.com/pggo/pggo/internal/wire"
)

// DefaultPlanCacheSize is how many statements the plan cache remembers
// unless SetPlanCacheSize says otherwise (jackc/pgx keeps 512 per
// connection; a worker usually runs a few dozen distinct statements).
const DefaultPlanCacheSize = 256

// NoCache, given as the first argument after the SQL text of Exec, Query
// or QueryRow, runs that call without the plan cache: the statement is parsed and planned
// for this call only, as a one-shot plan, and nothing is kept. Use it for
// SQL text that is built per call, or to get a plan for these argument
// values rather than a generic one.
//
//	spi.Exec("DELETE FROM jobs WHERE id = $1", spi.NoCache, id)
var NoCache = noCache{}

type noCache struct{}

// SetPlanCacheSize sets how many statements (SQL text and argument types)
// the automatic plan cache of Exec, Query and QueryRow remembers; 0 turns
// it off. Entries beyond the new size are dropped, least recently used
// first, and their plans freed; call it on the worker's goroutine.
//
// How the cache works: the first time a statement is seen it runs as a
// one-shot plan, exactly as without a cache, and is remembered. The second
// time, if it is a single SELECT, INSERT, UPDATE, DELETE or MERGE, it is
// prepared (SPI_prepare + SPI_keepplan, like spi.Prepare) and later calls
// only bind and execute the kept plan. A plan lives across transactions,
// savepoints and errors; PostgreSQL's plan cache re-plans it by itself
// after DDL on the tables it uses or a change of search_path. Parameter
// types PostgreSQL inferred when the plan was prepared (for string, nil
// and time.Time arguments) stay fixed from then on, as with spi.Prepare
// and jackc/pgx's statement cache. Several statements in one string and
// utility commands (CREATE, SET, ...) are never cached.
func SetPlanCacheSize(n int) {
	if n < 0 {
		n = 0
	}
	plans.mu.Lock()
	plans.size = n
	victims := plans.evictLocked()
	plans.mu.Unlock()
	plans.free(victims)
}

// PlanCacheSize is the plan cache's current size (see SetPlanCacheSize).
func PlanCacheSize() int {
	plans.mu.Lock()
	defer plans.mu.Unlock()
	return plans.size
}

// PlanCacheStats reports how many statements the plan cache remembers and
// how many of them hold a kept plan (for tests and monitoring).
func PlanCacheStats() (entries, kept int) {
	plans.mu.Lock()
	defer plans.mu.Unlock()
	for e := plans.ring.next; e != &plans.ring; e = e.next {
		entries++
		if e.plan != nil {
			kept++
		}
	}
	return entries, kept
}

// encode is wire.EncodeParams with its input errors as *pggo.Error where
// PostgreSQL has a SQLSTATE for them (a NUL byte in text: 22021).
func encode(args []any) ([]byte, error) {
	p, err := wire.EncodeParams(args)
	return p, asPGError(err)
}

func asPGError(err error) error {
	var se interface{ SQLState() string }
	if err != nil && errors.As(err, &se) {
		return &pggo.Error{Severity: "ERROR", SQLState: se.SQLState(), Message: err.Error()}
	}
	return err
}

// withoutCache strips a leading NoCache from args.
func withoutCache(args []any) ([]any, bool) {
	if len(args) > 0 {
		if _, ok := args[0].(noCache); ok {
			return args[1:], false
		}
	}
	return args, true
}

// cacheEntry is one statement the cache has seen.
type cacheEntry struct {
	key         string
	plan        *pg.Plan // nil: seen once so far, or uncacheable
	uncacheable bool     // prepared once and found not worth keeping
	prev, next  *cacheEntry
}

// planCache is an LRU of statements keyed by SQL text and argument types.
// The mutex only protects the bookkeeping: every call into the loader is
// made without it, so a statement that calls back into Go (a Go SQL
// function) cannot deadlock on it.
type planCache struct {
	mu      sync.Mutex
	size    int
	entries map[string]*cacheEntry
	ring    cacheEntry // sentinel: ring.next is the most recently used
	// busy counts calls into the loader running a cached plan: while one
	// runs, evicted plans are not freed (a Go SQL function called by that
	// statement could otherwise free the plan under it) but queued.
	busy    atomic.Int32
	pending []*pg.Plan
}

var plans = newPlanCache(DefaultPlanCacheSize)

func newPlanCache(size int) *planCache {
	c := &planCache{size: size, entries: map[string]*cacheEntry{}}
	c.ring.next, c.ring.prev = &c.ring, &c.ring
	return c
}

func (c *planCache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *planCache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.ring, c.ring.next
	c.ring.next.prev = e
	c.ring.next = e
}

// evictLocked drops least recently used entries beyond size and returns
// the plans to free.
func (c *planCache) evictLocked() []*pg.Plan {
	var victims []*pg.Plan
	for len(c.entries) > c.size {
		e := c.ring.prev
		c.unlink(e)
		delete(c.entries, e.key)
		if e.plan != nil {
			victims = append(victims, e.plan)
		}
	}
	return victims
}

// free releases evicted plans, unless a cached plan is running (then they
// wait for the next eviction outside one). A plan the loader refuses to
// free (the wrong goroutine) is kept for a later attempt.
func (c *planCache) free(victims []*pg.Plan) {
	if len(victims) == 0 && len(c.pending) == 0 {
		return
	}
	c.mu.Lock()
	c.pending = append(c.pending, victims...)
	if c.busy.Load() > 0 || !pg.OnWorkerThread() {
		c.mu.Unlock()
		return
	}
	todo := c.pending
	c.pending = nil
	c.mu.Unlock()
	var failed []*pg.Plan
	for _, p := range todo {
		if err := pg.FreePlan(p); err != nil {
			failed = append(failed, p)
		}
	}
	if len(failed) > 0 {
		c.mu.Lock()
		c.pending = append(c.pending, failed...)
		c.mu.Unlock()
	}
}

// get returns the kept plan for sql with these parameters, or nil when the
// call should run as a one-shot plan (first sighting, uncacheable, cache
// off). On a statement's second sighting it prepares the plan; an error
// then is the statement's own (a syntax error, a missing table).
func (c *planCache) get(sql string, params []byte, nparams int) (*pg.Plan, error) {
	var kb [128]byte
	key := append(kb[:0], sql...)
	key = append(key, 0) // SQL text has no NUL (rejected), so the key is unambiguous
	key = wire.AppendParamTypes(key, params)

	c.mu.Lock()
	if c.size == 0 {
		c.mu.Unlock()
		return nil, nil
	}
	e := c.entries[string(key)] // no allocation for the lookup
	if e == nil {
		e = &cacheEntry{key: string(key)}
		c.entries[e.key] = e
		c.pushFront(e)
		victims := c.evictLocked()
		c.mu.Unlock()
		c.free(victims)
		return nil, nil
	}
	c.unlink(e)
	c.pushFront(e)
	if e.plan != nil || e.uncacheable {
		p := e.plan
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()

	// Second sighting: keep a plan, with the types Go declared.
	types := make([]uint32, 0, nparams)
	for t := key[len(sql)+1:]; len(t) >= 4; t = t[4:] {
		types = append(types, binary.LittleEndian.Uint32(t))
	}
	plan, settled, err := pg.PrepareCached(sql, types)
	if err != nil {
		return nil, err
	}
	var drop []*pg.Plan
	c.mu.Lock()
	switch {
	case c.entries[e.key] != e:
		// Evicted meanwhile (a callback ran statements): do not keep it.
		if plan != nil {
			drop = append(drop, plan)
		}
		plan = nil
	case plan == nil:
		e.uncacheable = true
	case len(settled) != nparams:
		// $n beyond the arguments: the one-shot path reports it as before.
		e.uncacheable = true
		drop = append(drop, plan)
		plan = nil
	default:
		e.plan = plan
	}
	c.mu.Unlock()
	c.free(drop)
	return plan, nil
}

// cachedPlan returns the kept plan to run sql with, or nil for a one-shot
// plan.
func cachedPlan(sql string, params []byte, nparams int, useCache bool) (*pg.Plan, error) {
	if !useCache {
		return nil, nil
	}
	return plans.get(sql, params, nparams)
}

// enter and leave bracket a call that runs a cached plan (see busy).
func (c *planCache) enter() { c.busy.Add(1) }
func (c *planCache) leave() { c.busy.Add(-1) }

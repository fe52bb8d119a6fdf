/*-------------------------------------------------------------------------
 *
 * loader_shmem.c
 *		Named shared memory regions declared in Go (package shmem).
 *
 * The postmaster never runs Go, yet shared memory must be sized before it
 * starts. So the init helper (loader_init.c) sends the regions Go declared
 * (name, size, alignment) with the workers, and the postmaster:
 *
 *	- in shmem_request_hook reserves each region's space and a tranche of
 *	  one LWLock named after the region (so a wait shows the region's name
 *	  in pg_stat_activity.wait_event);
 *	- in shmem_startup_hook creates the regions with ShmemInitStruct under
 *	  AddinShmemInitLock and only zeroes them: no Go in the postmaster.
 *
 * A region that was not reserved at start (the library is not in
 * shared_preload_libraries) is, on PostgreSQL 17 and later, a named
 * segment of the DSM registry (GetNamedDSMSegment): the registry creates it
 * once, under its own lock, and calls our C init callback, which zeroes it
 * and initialises the LWLock that lives in its header with a tranche id
 * allocated then and stored there. Each process that attaches registers
 * that tranche id under the region's name. Before 17 such a region is an
 * error saying that the library must be preloaded.
 *
 * Each region starts with a small C header whose "initialised" word Go
 * reads: the first process that attaches from Go runs the region's Go init
 * function under the region's LWLock and then sets the word. Children are
 * forked from the postmaster, so they inherit the table below with the
 * pointers already resolved. After a crash the postmaster runs the startup
 * hook again on a new segment (and empties the DSM registry): the regions
 * are zeroed and initialised once more.
 *
 * Lock waits. LWLockAcquire sleeps on the process's semaphore, which
 * nothing but the lock's release posts: a waiter never notices that the
 * postmaster died, nor a query cancel. So a region's lock is taken with
 * LWLockConditionalAcquire, and a process that finds it taken spins a
 * little, then sleeps on a
 * condition variable in the region's header (a latch wait that exits on
 * postmaster death and checks interrupts), reporting wait event class
 * LWLock with the region's tranche, and tries again when woken. A release
 * signals that condition variable when the header counts waiters (one
 * atomic read otherwise). A holder that exits without releasing (FATAL,
 * ERROR: PostgreSQL's LWLockReleaseAll) posts nothing, so the sleep also
 * times out every PGGO_LOCK_POLL_MS.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

/* These are used by the regions and their locks */
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/wait_event.h"
#if PG_VERSION_NUM >= 170000
#include "storage/dsm_registry.h"
#endif

#include "pggo_loader.h"

/* In front of every region's data. */
typedef struct PggoRegionHeaderData
{
	uint32		magic;
	pg_atomic_uint32 initialised;	/* set by Go once its init ran */
	uint64		size;
	uint32		align;
	int			tranche;		/* DSM registry regions: lock's tranche */
	pg_atomic_uint32 waiters;	/* processes in wait_for_lock */
	ConditionVariable cv;		/* broadcast on release when waiters > 0 */
	LWLock		lock;			/* DSM registry regions: the region's lock */
} PggoRegionHeaderData;

/* One cache line, so that the data after it is cache-aligned. */
typedef union PggoRegionHeader
{
	PggoRegionHeaderData h;
	char		pad[PG_CACHE_LINE_SIZE];
} PggoRegionHeader;

StaticAssertDecl(sizeof(PggoRegionHeaderData) <= PG_CACHE_LINE_SIZE, "region header fits a cache line");
StaticAssertDecl(sizeof(PggoRegionHeader) == PG_CACHE_LINE_SIZE, "region header is one cache line");

/* Longest sleep of a lock wait before trying again regardless. */
#define PGGO_LOCK_POLL_MS 10

/* Tries of a contended lock, pg_spin_delay() apart, before sleeping. */
#define PGGO_LOCK_SPINS 50

#define PGGO_REGION_MAGIC 0x70676f72	/* "pgor" */

typedef struct PggoRegion
{
	char		name[PGGO_REGION_NAMELEN + 1];
	char		key[PGGO_REGION_NAMELEN + 8];	/* ShmemInitStruct's name */
	uint64		size;
	uint32		align;
	PggoRegionHeader *hdr;		/* in this server's current segment */
	char	   *data;
	LWLock	   *lock;
	int			tranche;		/* the lock's tranche id */
	bool		dsm;			/* a DSM registry segment of this process */
} PggoRegion;

/*
 * Reserved regions: filled in the postmaster from the helper's reply;
 * children inherit them. DSM registry regions are appended by each process
 * as it attaches (room for PGGO_MAX_REGIONS in all).
 */
static PggoRegion *regions;
static int	nregions;

static PggoRegion *
region_table(void)
{
	if (regions == NULL)
		regions = MemoryContextAllocZero(TopMemoryContext, sizeof(PggoRegion) * PGGO_MAX_REGIONS);
	return regions;
}

static shmem_request_hook_type prev_shmem_request_hook;
static shmem_startup_hook_type prev_shmem_startup_hook;

static Size
region_space(const PggoRegion *r)
{
	/* The header, the data, and slack to align the data beyond a line. */
	return add_size(add_size(sizeof(PggoRegionHeader), r->size),
					r->align > PG_CACHE_LINE_SIZE ? r->align : 0);
}

static uint32
get_u32(const char *p)
{
	uint32		v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64
get_u64(const char *p)
{
	uint64		v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * Parse the regions part of the init helper's reply: u32 count, then per
 * region u32 name length, the name, u64 size, u32 alignment. Every length
 * is checked against what is left; anything wrong is FATAL with the
 * region named, as a bad worker definition is. Returns the bytes read: the
 * settings (loader_guc.c) follow.
 */
size_t
pggo_shmem_read_regions(const char *p, size_t len)
{
	size_t		off = 0;
	uint32		n;

	if (len < 4)
		ereport(FATAL, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply: no region count",
							   pggo_loader_path)));
	n = get_u32(p);
	off = 4;
	if (n > PGGO_MAX_REGIONS)
		ereport(FATAL,
				(errmsg("pggo: %s: %u shared memory regions declared; at most %d are supported",
						pggo_loader_path, n, PGGO_MAX_REGIONS)));
	region_table();
	for (uint32 i = 0; i < n; i++)
	{
		PggoRegion *r = &regions[i];
		uint32		namelen;

		if (len - off < 4 || (namelen = get_u32(p + off)) > len - off - 4)
			ereport(FATAL, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply: region %u is cut short",
								   pggo_loader_path, i + 1)));
		off += 4;
		if (namelen == 0 || namelen > PGGO_REGION_NAMELEN)
			ereport(FATAL,
					(errmsg("pggo: %s: shared memory region \"%.*s\": the name must have 1 to %d bytes",
							pggo_loader_path, (int) Min(namelen, 200), p + off, PGGO_REGION_NAMELEN)));
		memcpy(r->name, p + off, namelen);
		r->name[namelen] = '\0';
		off += namelen;
		if (strlen(r->name) != namelen)
			ereport(FATAL, (errmsg("pggo: %s: shared memory region %u: the name contains a NUL byte",
								   pggo_loader_path, i + 1)));
		if (len - off < 12)
			ereport(FATAL, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply: region \"%s\" is cut short",
								   pggo_loader_path, r->name)));
		r->size = get_u64(p + off);
		r->align = get_u32(p + off + 8);
		off += 12;
		if (r->size > PGGO_REGION_MAXSIZE)
			ereport(FATAL,
					(errmsg("pggo: %s: shared memory region \"%s\": %llu bytes is more than the %llu allowed",
							pggo_loader_path, r->name, (unsigned long long) r->size,
							(unsigned long long) PGGO_REGION_MAXSIZE)));
		if (r->align == 0 || (r->align & (r->align - 1)) != 0 || r->align > 4096)
			ereport(FATAL,
					(errmsg("pggo: %s: shared memory region \"%s\": alignment %u is not a power of two up to 4096",
							pggo_loader_path, r->name, r->align)));
		for (uint32 j = 0; j < i; j++)
			if (strcmp(regions[j].name, r->name) == 0)
				ereport(FATAL, (errmsg("pggo: %s: shared memory region \"%s\" is declared twice",
									   pggo_loader_path, r->name)));
		snprintf(r->key, sizeof(r->key), "pggo %s", r->name);
	}
	nregions = n;
	return off;
}

static void
pggo_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	for (int i = 0; i < nregions; i++)
	{
		RequestAddinShmemSpace(region_space(&regions[i]));
		RequestNamedLWLockTranche(regions[i].name, 1);
	}
}

static void
init_header(PggoRegionHeaderData *h, uint64 size, uint32 align)
{
	h->magic = PGGO_REGION_MAGIC;
	h->size = size;
	h->align = align;
	pg_atomic_init_u32(&h->initialised, 0);
	pg_atomic_init_u32(&h->waiters, 0);
	ConditionVariableInit(&h->cv);
}

/* In the postmaster, at start and after every crash: create and zero. */
static void
pggo_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	for (int i = 0; i < nregions; i++)
	{
		PggoRegion *r = &regions[i];
		bool		found;
		char	   *base = ShmemInitStruct(r->key, region_space(r), &found);
		uintptr_t	data = (uintptr_t) base + sizeof(PggoRegionHeader);

		if (found)
		{
			/* The name belongs to another library preloaded with this one. */
			LWLockRelease(AddinShmemInitLock);
			ereport(FATAL,
					(errmsg("pggo: %s: shared memory region \"%s\" already exists",
							pggo_loader_path, r->name),
					 errhint("Two preloaded libraries declare the same region name; prefix names with the extension's.")));
		}
		memset(base, 0, region_space(r));
		data = TYPEALIGN(r->align, data);
		r->hdr = (PggoRegionHeader *) base;
		init_header(&r->hdr->h, r->size, r->align);
		r->data = (char *) data;
		r->lock = &GetNamedLWLockTranche(r->name)->lock;
		r->tranche = r->lock->tranche;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init in the postmaster, after the helper's reply was read. */
void
pggo_shmem_install_hooks(void)
{
	if (nregions == 0)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pggo_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pggo_shmem_startup;
}

#if PG_VERSION_NUM >= 170000
/*
 * The DSM registry's init callback takes no argument: the region being
 * created is this one (set just before, on the only thread calling C).
 */
static PggoRegion *dsm_pending;

/* Under the registry's lock, once per server start and region. */
static void
dsm_region_init(void *ptr)
{
	PggoRegion *r = dsm_pending;
	PggoRegionHeader *hdr = ptr;

	memset(ptr, 0, region_space(r));
	init_header(&hdr->h, r->size, r->align);
	hdr->h.tranche = LWLockNewTrancheId();
	LWLockInitialize(&hdr->h.lock, hdr->h.tranche);
}

/*
 * A lock wait that ends the process (WL_EXIT_ON_PM_DEATH in the condition
 * variable's sleep) leaves the sleep to be cancelled by ProcKill, which
 * runs after DSM segments are unmapped: cancel it while the segment that
 * holds the condition variable is still there.
 */
static void
cancel_sleep_at_exit(int code, Datum arg)
{
	ConditionVariableCancelSleep();
}

static void
op_dsm_attach(void *p)
{
	static bool exit_hook;

	PggoRegion *r = p;
	bool		found;
	void	   *base;

	if (MyProc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pggo: shared memory region \"%s\" needs a process with shared memory access",
						r->name)));
	if (!exit_hook)
	{
		before_shmem_exit(cancel_sleep_at_exit, 0);
		exit_hook = true;
	}
	dsm_pending = r;
	base = GetNamedDSMSegment(r->key, region_space(r), dsm_region_init, &found);
	dsm_pending = NULL;
	r->hdr = base;
	r->data = (char *) TYPEALIGN(r->align, (uintptr_t) base + sizeof(PggoRegionHeader));
	r->lock = &r->hdr->h.lock;
	r->tranche = r->hdr->h.tranche;
	/* Names are per process before PostgreSQL 19: each one says it. */
	LWLockRegisterTranche(r->tranche, r->name);
}
#endif

/*
 * Find (on 17+, create) a region for Go. size and align are what this
 * process's Go code declared; they must match what the region was created
 * with.
 */
int
api_shmem_region(const char *name, uint64_t size, uint32_t align, void **data,
				 uint32_t **initialised, int *index, pggo_error *err)
{
	char		msg[640];
	PggoRegion *r = NULL;
	int			i;

	*data = NULL;
	*initialised = NULL;
	*index = -1;
	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	if (!IsUnderPostmaster)
	{
		pggo_set_error(err, PGGO_EUSAGE, "55000", "pggo: shared memory is not set up in this process");
		return -1;
	}
	for (i = 0; i < nregions; i++)
		if (strcmp(regions[i].name, name) == 0)
		{
			r = &regions[i];
			break;
		}
	if (r == NULL)
	{
#if PG_VERSION_NUM >= 170000
		if (strlen(name) == 0 || strlen(name) > PGGO_REGION_NAMELEN || size > PGGO_REGION_MAXSIZE ||
			align == 0 || (align & (align - 1)) != 0 || align > 4096)
		{
			snprintf(msg, sizeof(msg), "pggo: shared memory region \"%.60s\": bad name, size or alignment", name);
			pggo_set_error(err, PGGO_EUSAGE, "22023", msg);
			return -1;
		}
		if (nregions >= PGGO_MAX_REGIONS)
		{
			snprintf(msg, sizeof(msg), "pggo: shared memory region \"%s\": at most %d regions are supported",
					 name, PGGO_MAX_REGIONS);
			pggo_set_error(err, PGGO_EUSAGE, "54000", msg);
			return -1;
		}
		r = &region_table()[nregions];
		memset(r, 0, sizeof(*r));
		strlcpy(r->name, name, sizeof(r->name));
		snprintf(r->key, sizeof(r->key), "pggo %s", r->name);
		r->size = size;
		r->align = align;
		r->dsm = true;
		if (pggo_guard(op_dsm_attach, r, err) != 0)
		{
			memset(r, 0, sizeof(*r));
			return -1;
		}
		i = nregions++;
#else
		snprintf(msg, sizeof(msg),
				 "shared memory region \"%s\" was not reserved at server start: add the extension to shared_preload_libraries (regions of a library loaded later need PostgreSQL 17's DSM registry; this is PostgreSQL %s), and declare the region with shmem.Declare in a package-level variable",
				 name, PG_MAJORVERSION);
		pggo_set_error(err, PGGO_EUSAGE, "55000", msg);
		return -1;
#endif
	}
	if (r->hdr == NULL)
	{
		pggo_set_error(err, PGGO_EUSAGE, "55000", "pggo: shared memory is not set up in this process");
		return -1;
	}
	if (r->size != size || r->align != align || r->hdr->h.magic != PGGO_REGION_MAGIC ||
		r->hdr->h.size != size || r->hdr->h.align != align)
	{
		snprintf(msg, sizeof(msg),
				 "shared memory region \"%s\" was %s with %llu bytes (alignment %u), but this process declares %llu bytes (alignment %u)",
				 name, r->dsm ? "created in the DSM registry" : "reserved at server start",
				 (unsigned long long) r->hdr->h.size, r->hdr->h.align,
				 (unsigned long long) size, align);
		pggo_set_error(err, PGGO_EUSAGE, "55000", msg);
		return -1;
	}
	*data = r->data;
	*initialised = (uint32_t *) &r->hdr->h.initialised.value;
	*index = i;
	return 0;
}

typedef struct LockArgs
{
	PggoRegion *r;
	int			mode;
} LockArgs;

/*
 * Sleep until the lock is ours. Registered as a waiter before the first
 * try, so a release either sees the count or happens before that try (both
 * sides pass a full barrier between their write and their read). A
 * release wakes one waiter (a broadcast would wake them all to fight over
 * one exclusive lock); one that gets it shared wakes the next, which may
 * share it too.
 */
static void
wait_for_lock(PggoRegion *r, LWLockMode mode)
{
	PggoRegionHeaderData *h = &r->hdr->h;
	volatile bool acquired = false;

	pg_atomic_fetch_add_u32(&h->waiters, 1);
	PG_TRY();
	{
		ConditionVariablePrepareToSleep(&h->cv);
		while (!LWLockConditionalAcquire(r->lock, mode))
			(void) ConditionVariableTimedSleep(&h->cv, PGGO_LOCK_POLL_MS,
											   PG_WAIT_LWLOCK | (uint32) r->tranche);
		acquired = true;
	}
	PG_FINALLY();
	{
		ConditionVariableCancelSleep();
		/* Leaving without the lock (an ERROR): pass a wake-up on. */
		if (pg_atomic_sub_fetch_u32(&h->waiters, 1) != 0 && (mode == LW_SHARED || !acquired))
			ConditionVariableSignal(&h->cv);
	}
	PG_END_TRY();
}

static void
op_lock(void *p)
{
	LockArgs   *a = p;
	LWLock	   *lock = a->r->lock;
	LWLockMode	mode = a->mode == PGGO_LOCK_EXCLUSIVE ? LW_EXCLUSIVE : LW_SHARED;

	if (MyProc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pggo: a shared memory lock needs a process with shared memory access")));
	if (a->mode == PGGO_LOCK_RELEASE)
	{
		/* An ERROR may have released it already (LWLockReleaseAll). */
		if (LWLockHeldByMe(lock))
			LWLockRelease(lock);
		pg_memory_barrier();
		if (pg_atomic_read_u32(&a->r->hdr->h.waiters) != 0)
			ConditionVariableSignal(&a->r->hdr->h.cv);
		return;
	}
	if (LWLockHeldByMe(lock))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("pggo: this process already holds the lock; LWLocks do not nest")));
	/*
	 * Critical sections are short: a few microseconds of spinning spare
	 * most contended acquisitions a sleep and a latch wake-up (4 workers x
	 * 100k increments: ~270 ms without, ~190 ms with, ~185 ms for
	 * LWLockAcquire).
	 */
	for (int i = 0; !LWLockConditionalAcquire(lock, mode); i++)
	{
		if (i == PGGO_LOCK_SPINS)
		{
			wait_for_lock(a->r, mode);
			break;
		}
		pg_spin_delay();
	}
}

int
api_shmem_lock(int index, int mode, pggo_error *err)
{
	LockArgs	a;

	if (index < 0 || index >= nregions || regions[index].lock == NULL)
	{
		pggo_set_error(err, PGGO_EUSAGE, "55000", "pggo: no such shared memory region");
		return -1;
	}
	a.r = &regions[index];
	a.mode = mode;
	return pggo_guard(op_lock, &a, err);
}

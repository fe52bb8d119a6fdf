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
 * Each region starts with a small C header whose "initialised" word Go
 * reads: the first process that attaches from Go runs the region's Go init
 * function under the region's LWLock and then sets the word. Children are
 * forked from the postmaster, so they inherit the table below with the
 * pointers already resolved. After a crash the postmaster runs the startup
 * hook again on a new segment: the regions are zeroed and initialised once
 * more.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

/* These are used by the regions and their locks */
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "pggo_loader.h"

/* In front of every region's data; its size keeps the data cache-aligned. */
typedef struct PggoRegionHeader
{
	uint32		magic;
	pg_atomic_uint32 initialised;	/* set by Go once its init ran */
	uint64		size;
	char		pad[PG_CACHE_LINE_SIZE - 16];
} PggoRegionHeader;

StaticAssertDecl(sizeof(PggoRegionHeader) == PG_CACHE_LINE_SIZE, "region header is one cache line");

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
} PggoRegion;

/* Filled in the postmaster from the helper's reply; children inherit it. */
static PggoRegion *regions;
static int	nregions;

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
	regions = MemoryContextAllocZero(TopMemoryContext, sizeof(PggoRegion) * Max(n, 1));
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
		r->hdr->magic = PGGO_REGION_MAGIC;
		r->hdr->size = r->size;
		pg_atomic_init_u32(&r->hdr->initialised, 0);
		r->data = (char *) data;
		r->lock = &GetNamedLWLockTranche(r->name)->lock;
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

/*
 * Find a region for Go. size and align are what this process's Go code
 * declared; they must match what the init helper reported at start.
 */
int
api_shmem_region(const char *name, uint64_t size, uint32_t align, void **data,
				 uint32_t **initialised, int *index, pggo_error *err)
{
	char		msg[512];

	*data = NULL;
	*initialised = NULL;
	*index = -1;
	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	for (int i = 0; i < nregions; i++)
	{
		PggoRegion *r = &regions[i];

		if (strcmp(r->name, name) != 0)
			continue;
		if (r->hdr == NULL || !IsUnderPostmaster)
		{
			pggo_set_error(err, PGGO_EUSAGE, "55000", "pggo: shared memory is not set up in this process");
			return -1;
		}
		if (r->size != size || r->align != align || r->hdr->magic != PGGO_REGION_MAGIC ||
			r->hdr->size != size)
		{
			snprintf(msg, sizeof(msg),
					 "shared memory region \"%s\" was reserved with %llu bytes (alignment %u) at server start, but this process declares %llu bytes (alignment %u)",
					 name, (unsigned long long) r->size, r->align,
					 (unsigned long long) size, align);
			pggo_set_error(err, PGGO_EUSAGE, "55000", msg);
			return -1;
		}
		*data = r->data;
		*initialised = (uint32_t *) &r->hdr->initialised.value;
		*index = i;
		return 0;
	}
	snprintf(msg, sizeof(msg),
			 "shared memory region \"%s\" was not reserved at server start: declare it with shmem.Declare in a package-level variable (or in OnInit) of an extension listed in shared_preload_libraries",
			 name);
	pggo_set_error(err, PGGO_EUSAGE, "55000", msg);
	return -1;
}

typedef struct LockArgs
{
	LWLock	   *lock;
	int			mode;
} LockArgs;

static void
op_lock(void *p)
{
	LockArgs   *a = p;

	if (MyProc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pggo: a shared memory lock needs a process with shared memory access")));
	if (a->mode == PGGO_LOCK_RELEASE)
	{
		/* An ERROR may have released it already (LWLockReleaseAll). */
		if (LWLockHeldByMe(a->lock))
			LWLockRelease(a->lock);
		return;
	}
	if (LWLockHeldByMe(a->lock))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("pggo: this process already holds the lock; LWLocks do not nest")));
	LWLockAcquire(a->lock, a->mode == PGGO_LOCK_EXCLUSIVE ? LW_EXCLUSIVE : LW_SHARED);
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
	a.lock = regions[index].lock;
	a.mode = mode;
	return pggo_guard(op_lock, &a, err);
}

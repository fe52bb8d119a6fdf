/*-------------------------------------------------------------------------
 *
 * loader_dynamic.c
 *		Dynamic background workers: registered at run time by a worker or a
 *		backend (a Go SQL function), tracked through their handle.
 *
 * RegisterDynamicBackgroundWorker only says "no" when it fails; the reason
 * is found here (no free slot, or not a process that may register one) and
 * returned as an error with a hint, never ignored. A full server is not
 * raised as an ERROR but returned (PGGO_ENOSLOT): inside a SQL function a
 * raised ERROR cannot be caught by Go, and a caller may treat a full server
 * as an ordinary outcome (worker_spi_launch returns NULL).
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary for a bgworker */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"

#include "pggo_loader.h"

typedef struct RegisterArgs
{
	const pggo_spec *spec;
	void	   *handle;
	bool		no_slot;
	char		name[BGW_MAXLEN];
} RegisterArgs;

static void
op_register_dynamic(void *p)
{
	RegisterArgs *a = p;
	BackgroundWorker w;
	BackgroundWorkerHandle *h = NULL;
	void	   *copy;
	Size		size;

	pggo_fill_bgw(&w, a->spec);
	if (!IsUnderPostmaster)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not register background worker \"%s\": dynamic workers can only be launched by a running server process",
						w.bgw_name),
				 errhint("In OnInit, register static workers with Load; call LoadDynamic from a worker or a SQL function.")));
	if (!RegisterDynamicBackgroundWorker(&w, &h))
	{
		/* The only reason left once IsUnderPostmaster holds. */
		a->no_slot = true;
		strlcpy(a->name, w.bgw_name, sizeof(a->name));
		return;
	}

	/*
	 * The handle is opaque and palloc'd in a context that may go away; Go
	 * keeps a malloc'd copy it can free from any thread.
	 */
	size = GetMemoryChunkSpace(h);
	copy = malloc(size);
	if (copy == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	memcpy(copy, h, size);
	pfree(h);
	a->handle = copy;
}

int
api_register_dynamic(const pggo_spec *spec, void **handle, pggo_error *err)
{
	RegisterArgs a = {spec, NULL, false, ""};
	char		text[256];

	*handle = NULL;
	if (pggo_guard(op_register_dynamic, &a, err) != 0)
		return -1;
	if (a.no_slot)
	{
		snprintf(text, sizeof(text), "could not register background worker \"%s\": no free background worker slot", a.name);
		pggo_set_error(err, PGGO_ENOSLOT, "53400", text);
		snprintf(text, sizeof(text), "Every one of the max_worker_processes (%d) slots is in use; raise max_worker_processes (needs a restart) or wait for a worker to exit.",
				 max_worker_processes);
		err->hint = pggo_xstrdup(text);
		return -1;
	}
	*handle = a.handle;
	return 0;
}

typedef struct HandleArgs
{
	BackgroundWorkerHandle *handle;
	int			op;
	pid_t		pid;
	BgwHandleStatus status;
} HandleArgs;

static void
op_bgw_handle(void *p)
{
	HandleArgs *a = p;

	switch (a->op)
	{
		case PGGO_BGW_GET_PID:
			a->status = GetBackgroundWorkerPid(a->handle, &a->pid);
			break;
		case PGGO_BGW_WAIT_STARTUP:
			a->status = WaitForBackgroundWorkerStartup(a->handle, &a->pid);
			break;
		case PGGO_BGW_WAIT_SHUTDOWN:
			a->status = WaitForBackgroundWorkerShutdown(a->handle);
			break;
		case PGGO_BGW_TERMINATE:
			TerminateBackgroundWorker(a->handle);
			a->status = BGWH_STOPPED;
			break;
		default:
			elog(ERROR, "pggo: unknown handle operation %d", a->op);
	}
}

int
api_bgw_handle(void *handle, int op, int *pid, int *status, pggo_error *err)
{
	HandleArgs	a = {handle, op, 0, BGWH_STOPPED};

	*pid = 0;
	if (pggo_guard(op_bgw_handle, &a, err) != 0)
		return -1;
	*pid = a.pid;
	*status = a.status == BGWH_STARTED ? PGGO_BGWH_STARTED :
		a.status == BGWH_NOT_YET_STARTED ? PGGO_BGWH_NOT_YET_STARTED :
		a.status == BGWH_POSTMASTER_DIED ? PGGO_BGWH_POSTMASTER_DIED : PGGO_BGWH_STOPPED;
	return 0;
}

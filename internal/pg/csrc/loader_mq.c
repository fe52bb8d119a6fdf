/*-------------------------------------------------------------------------
 *
 * loader_mq.c
 *		Message queues between processes (package shmem): PostgreSQL's
 *		shm_mq in a dynamic shared memory segment of its own.
 *
 * One process creates the queue and names its own end (sender or
 * receiver); it passes the segment's handle to the other, typically as a
 * dynamic worker's argument, which attaches and takes the other end.
 *
 * Blocking sends and receives never use shm_mq's own waits: those reset
 * the latch and sleep again, so a worker that took SIGTERM over could not
 * stop while its peer is stuck. Here shm_mq is always called with nowait,
 * and the wait is ours: WaitLatch (wait event MessageQueueSend/Receive),
 * interrupts checked after each wake, postmaster death an error, and a
 * recorded SIGTERM (loader_signals.c) ends the wait with
 * PGGO_MQ_INTERRUPTED. Other recorded wake-ups (bgworker.Wake, SIGHUP)
 * are left recorded for the worker's next WaitLatch.
 *
 * A peer that detaches (exits, even by ERROR or FATAL: its segment is
 * detached on the way out) marks the queue detached and sets our latch, so
 * the other end learns it at once. A peer that dies before attaching is
 * seen through its worker handle (mq_set_worker) and the postmaster's
 * notification to bgw_notify_pid.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

/* These are used by the queues */
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "utils/wait_event.h"

#include "pggo_loader.h"

#if PG_VERSION_NUM >= 170000
#define PGGO_WAIT_MQ_SEND WAIT_EVENT_MESSAGE_QUEUE_SEND
#define PGGO_WAIT_MQ_RECEIVE WAIT_EVENT_MESSAGE_QUEUE_RECEIVE
#else
#define PGGO_WAIT_MQ_SEND WAIT_EVENT_MQ_SEND
#define PGGO_WAIT_MQ_RECEIVE WAIT_EVENT_MQ_RECEIVE
#endif

/* Largest queue: a ring this big is already far past diminishing returns. */
#define PGGO_MQ_MAXSIZE ((Size) 1 << 30)

typedef struct PggoQueue
{
	dsm_segment *seg;
	shm_mq_handle *mqh;
	int			role;
	BackgroundWorkerHandle *worker; /* Go's copy; kept alive by Go */
} PggoQueue;

typedef struct QueueArgs
{
	Size		size;
	int			role;
	dsm_handle	handle;
	PggoQueue  *q;
} QueueArgs;

static void
set_role_and_attach(PggoQueue *q, shm_mq *mq, int role)
{
	MemoryContext old;

	if (role == PGGO_MQ_SENDER)
		shm_mq_set_sender(mq, MyProc);
	else
		shm_mq_set_receiver(mq, MyProc);
	/* The handle and its buffer must outlive a SQL function's call. */
	old = MemoryContextSwitchTo(TopMemoryContext);
	q->mqh = shm_mq_attach(mq, q->seg, NULL);
	MemoryContextSwitchTo(old);
	q->role = role;
}

static void
check_proc(void)
{
	if (MyProc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pggo: message queues need a process with shared memory access")));
}

static void
op_create(void *p)
{
	QueueArgs  *a = p;
	PggoQueue  *q;

	check_proc();
	if (a->size < shm_mq_minimum_size || a->size > PGGO_MQ_MAXSIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pggo: a message queue must have %zu to %zu bytes, not %zu",
						(size_t) shm_mq_minimum_size, (size_t) PGGO_MQ_MAXSIZE, (size_t) a->size)));
	q = MemoryContextAllocZero(TopMemoryContext, sizeof(PggoQueue));
	q->seg = dsm_create(a->size, 0);
	/* Mapped until mq_detach or exit, not until the transaction ends. */
	dsm_pin_mapping(q->seg);
	set_role_and_attach(q, shm_mq_create(dsm_segment_address(q->seg), a->size), a->role);
	a->handle = dsm_segment_handle(q->seg);
	a->q = q;
}

int
api_mq_create(size_t size, int role, void **mq, uint32_t *handle, pggo_error *err)
{
	QueueArgs	a = {.size = size,.role = role};

	*mq = NULL;
	*handle = 0;
	if (pggo_guard(op_create, &a, err) != 0)
		return -1;
	*mq = a.q;
	*handle = a.handle;
	return 0;
}

static void
op_attach(void *p)
{
	QueueArgs  *a = p;
	PggoQueue  *q;
	dsm_segment *seg;
	shm_mq	   *mq;

	check_proc();
	if (dsm_find_mapping(a->handle) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("pggo: this process is already attached to message queue %u", a->handle)));
	seg = dsm_attach(a->handle);
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pggo: could not attach to message queue %u: it no longer exists", a->handle),
				 errhint("Its creator detached or exited before this process attached.")));
	dsm_pin_mapping(seg);
	mq = dsm_segment_address(seg);
	if ((a->role == PGGO_MQ_SENDER ? shm_mq_get_sender(mq) : shm_mq_get_receiver(mq)) != NULL)
	{
		dsm_detach(seg);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("pggo: message queue %u already has a %s", a->handle,
						a->role == PGGO_MQ_SENDER ? "sender" : "receiver")));
	}
	q = MemoryContextAllocZero(TopMemoryContext, sizeof(PggoQueue));
	q->seg = seg;
	set_role_and_attach(q, mq, a->role);
	a->q = q;
}

int
api_mq_attach(uint32_t handle, int role, void **mq, pggo_error *err)
{
	QueueArgs	a = {.handle = handle,.role = role};

	*mq = NULL;
	if (pggo_guard(op_attach, &a, err) != 0)
		return -1;
	*mq = a.q;
	return 0;
}

typedef struct WorkerArgs
{
	PggoQueue  *q;
	BackgroundWorkerHandle *worker;
} WorkerArgs;

static void
op_set_worker(void *p)
{
	WorkerArgs *a = p;

	shm_mq_set_handle(a->q->mqh, a->worker);
	a->q->worker = a->worker;
}

int
api_mq_set_worker(void *mq, void *bgw_handle, pggo_error *err)
{
	WorkerArgs	a = {mq, bgw_handle};

	return pggo_guard(op_set_worker, &a, err);
}

typedef struct IoArgs
{
	PggoQueue  *q;
	const char *in;
	Size		len;
	void	   *out;
	bool		nowait;
	int			result;
} IoArgs;

/* One wait of a blocking send or receive; false: stop waiting. */
static bool
wait_for_peer(IoArgs *a, uint32 wait_event)
{
	int			rc;

	if (pggo_stop_requested())
	{
		a->result = PGGO_MQ_INTERRUPTED;
		return false;
	}
	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_POSTMASTER_DEATH, -1, wait_event);
	ResetLatch(MyLatch);
	if (rc & WL_POSTMASTER_DEATH)
		ereport(ERROR,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("pggo: the postmaster died while waiting on a message queue")));
	/* A query cancel, or die() for a worker that did not take SIGTERM over. */
	CHECK_FOR_INTERRUPTS();
	if (pggo_stop_requested())
	{
		a->result = PGGO_MQ_INTERRUPTED;
		return false;
	}
	return true;
}

static int
mq_result(shm_mq_result r)
{
	return r == SHM_MQ_SUCCESS ? PGGO_MQ_OK :
		r == SHM_MQ_WOULD_BLOCK ? PGGO_MQ_WOULD_BLOCK : PGGO_MQ_DETACHED;
}

static void
op_send(void *p)
{
	IoArgs	   *a = p;

	CHECK_FOR_INTERRUPTS();
	for (;;)
	{
		/* Flushed at once: a message must never wait in our end unseen. */
		shm_mq_result r = shm_mq_send(a->q->mqh, a->len, a->in, true, true);

		a->result = mq_result(r);
		if (r != SHM_MQ_WOULD_BLOCK || a->nowait)
			return;
		if (!wait_for_peer(a, PGGO_WAIT_MQ_SEND))
			return;
	}
}

static void
op_receive(void *p)
{
	IoArgs	   *a = p;

	CHECK_FOR_INTERRUPTS();
	for (;;)
	{
		Size		n = 0;
		void	   *data = NULL;
		shm_mq_result r = shm_mq_receive(a->q->mqh, &n, &data, true);

		a->result = mq_result(r);
		if (r == SHM_MQ_SUCCESS)
		{
			a->out = data;
			a->len = n;
			return;
		}
		if (r != SHM_MQ_WOULD_BLOCK || a->nowait)
			return;
		if (!wait_for_peer(a, PGGO_WAIT_MQ_RECEIVE))
			return;
	}
}

static bool
check_queue(PggoQueue *q, int role, pggo_error *err)
{
	if (q == NULL || q->mqh == NULL)
	{
		pggo_set_error(err, PGGO_EUSAGE, "55000", "pggo: the message queue is closed");
		return false;
	}
	if (q->role != role)
	{
		pggo_set_error(err, PGGO_EUSAGE, "55000",
					   role == PGGO_MQ_SENDER ? "pggo: this end of the message queue is its receiver; it cannot send" :
					   "pggo: this end of the message queue is its sender; it cannot receive");
		return false;
	}
	return true;
}

int
api_mq_send(void *mq, const char *data, size_t len, int nowait, pggo_error *err)
{
	IoArgs		a = {.q = mq,.in = data,.len = len,.nowait = nowait != 0};

	if (!check_queue(mq, PGGO_MQ_SENDER, err))
		return -1;
	if (pggo_guard(op_send, &a, err) != 0)
		return -1;
	return a.result;
}

int
api_mq_receive(void *mq, char **data, size_t *len, int nowait, pggo_error *err)
{
	IoArgs		a = {.q = mq,.nowait = nowait != 0};

	*data = NULL;
	*len = 0;
	if (!check_queue(mq, PGGO_MQ_RECEIVER, err))
		return -1;
	if (pggo_guard(op_receive, &a, err) != 0)
		return -1;
	*data = a.out;
	*len = a.len;
	return a.result;
}

static void
op_detach(void *p)
{
	PggoQueue  *q = p;

	/* shm_mq_detach flushes what is pending and tells the peer. */
	if (q->mqh != NULL)
		shm_mq_detach(q->mqh);
	q->mqh = NULL;
	if (q->seg != NULL)
		dsm_detach(q->seg);
	q->seg = NULL;
}

int
api_mq_detach(void *mq, pggo_error *err)
{
	PggoQueue  *q = mq;
	int			rc;

	if (q == NULL)
		return 0;
	rc = pggo_guard(op_detach, q, err);
	if (q->seg == NULL)
		pfree(q);
	return rc;
}

/*-------------------------------------------------------------------------
 *
 * loader_signals.c
 *		Signals, latches and wake-ups of a Go worker.
 *
 * PostgreSQL's handlers run on the main thread: the Go library was opened
 * with every signal blocked, so Go's own threads never take SIGTERM, SIGHUP,
 * SIGUSR1 or SIGURG (PostgreSQL 15's latches). The main thread is usually
 * running Go code on a small goroutine stack, so every PostgreSQL handler is
 * moved to an alternate signal stack, as Go requires of non-Go handlers.
 *
 * A latch is a single bit: PostgreSQL's own waits (pg_sleep, a lock wait)
 * reset it too. So every reason to wake the worker (bgworker.Wake, SIGTERM,
 * SIGHUP, a goroutine's failure) is also recorded here, and WaitLatch checks
 * the record before it sleeps: a wake-up consumed by a statement is never
 * lost, and after SIGTERM WaitLatch never sleeps again.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary for a bgworker */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/wait_event.h"

/* These are needed by the signal stack, waking other processes and reloads */
#include <limits.h>
#include <signal.h>
#include <unistd.h>
#include "postmaster/postmaster.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "pggo_loader.h"

/* Size of the alternate signal stack given to the worker's main thread. */
#define PGGO_ALTSTACK_SIZE (256 * 1024)

/* Signal state, written by handlers, read by Go through the api. */
static volatile sig_atomic_t wake_flags = 0;
static volatile sig_atomic_t got_sighup = 0;
static volatile sig_atomic_t got_sigterm = 0;
static volatile sig_atomic_t sigterm_seen = 0;
static volatile sig_atomic_t sighup_wake = 0;

/* Set by api_set_my_latch from any thread, or by pggo_wake; consumed by WaitLatch. */
static int	wake_pending = 0;

/* Set when Go queued work for the worker's thread (bgworker.Do, logs). */
static int	work_pending = 0;

/* The wait event WaitLatch reports (bgworker.SetWaitEvent). */
static uint32 my_wait_event = PG_WAIT_EXTENSION;

/* Where the SIGTERM handler tells Go (bgworker.Context); -1: nobody listens. */
static volatile sig_atomic_t notify_fd = -1;

/*
 * SIGTERM. Until the worker takes SIGTERM over with AttachSignalHandlers, it
 * behaves like PostgreSQL's die(): the worker ends (FATAL, exit code 1) at
 * its next WaitLatch or statement. After that, it only raises the flag and
 * sets the latch, and the Go loop decides when to return.
 */
static void
pggo_sigterm_handler(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = 1;
	sigterm_seen = 1;
	if (notify_fd >= 0)
	{
		/* write() is async-signal-safe; the pipe is non-blocking. */
		ssize_t		rc pg_attribute_unused() = write(notify_fd, "T", 1);
	}
	if (wake_flags & PGGO_WAKE_SIGTERM)
		SetLatch(MyLatch);
	else
		die(postgres_signal_arg);
	errno = save_errno;
}

/*
 * SIGHUP: the configuration is reloaded at the next WaitLatch (never in the
 * handler, which pgx did); the latch is set only if the worker asked for it.
 */
static void
pggo_sighup_handler(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sighup = 1;
	sighup_wake = 1;
	ConfigReloadPending = true;
	if (wake_flags & PGGO_WAKE_SIGHUP)
		SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * SIGUSR2: pggo_wake from SQL. Background workers ignore SIGUSR2, so the
 * signal is free; unlike a bare SetLatch it is recorded, so a statement
 * waiting on the latch cannot swallow it, and it reloads nothing.
 */
static void
pggo_sigusr2_handler(SIGNAL_ARGS)
{
	int			save_errno = errno;

	__atomic_store_n(&wake_pending, 1, __ATOMIC_SEQ_CST);
	SetLatch(MyLatch);
	errno = save_errno;
}

void
pggo_use_signal_stack(void)
{
	static const int signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGALRM, SIGUSR1, SIGUSR2};
	stack_t		current;

	if (sigaltstack(NULL, &current) == 0 && (current.ss_flags & SS_DISABLE))
	{
		stack_t		ss;

		ss.ss_sp = malloc(PGGO_ALTSTACK_SIZE);
		ss.ss_size = PGGO_ALTSTACK_SIZE;
		ss.ss_flags = 0;
		if (ss.ss_sp != NULL)
			sigaltstack(&ss, NULL);
	}
	for (int i = 0; i < lengthof(signals); i++)
	{
		struct sigaction sa;

		if (sigaction(signals[i], NULL, &sa) != 0)
			continue;
		if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN || (sa.sa_flags & SA_ONSTACK))
			continue;
		sa.sa_flags |= SA_ONSTACK;
		sigaction(signals[i], &sa, NULL);
	}
}

/* A worker's handlers, before it unblocks signals and enters Go. */
void
pggo_install_worker_signals(void)
{
	pqsignal(SIGTERM, pggo_sigterm_handler);
	pqsignal(SIGHUP, pggo_sighup_handler);
	pqsignal(SIGUSR2, pggo_sigusr2_handler);
	pggo_use_signal_stack();
	BackgroundWorkerUnblockSignals();
}

void
api_attach_signals(int flags)
{
	wake_flags = flags;
}

int
api_take_sighup(void)
{
	return __atomic_exchange_n(&got_sighup, 0, __ATOMIC_SEQ_CST);
}

int
api_take_sigterm(void)
{
	return __atomic_exchange_n(&got_sigterm, 0, __ATOMIC_SEQ_CST);
}

int
api_sigterm_seen(void)
{
	return sigterm_seen;
}

/*
 * Any thread may call this: it records the wake-up, then sets the latch,
 * which only writes memory and sends SIGURG to this process (a
 * process-directed signal, taken by the main thread).
 */
void
api_set_my_latch(void)
{
	__atomic_store_n(&wake_pending, 1, __ATOMIC_SEQ_CST);
	if (MyLatch != NULL)
		SetLatch(MyLatch);
}

/* Go queued work for the worker's thread: wake it, recorded apart from Wake. */
void
api_notify_work(void)
{
	__atomic_store_n(&work_pending, 1, __ATOMIC_SEQ_CST);
	if (MyLatch != NULL)
		SetLatch(MyLatch);
}

/* Go's end of the SIGTERM notification pipe (non-blocking write end). */
void
api_set_notify_fd(int fd)
{
	notify_fd = fd;
	/* A SIGTERM that came before Go listened is told at once. */
	if (fd >= 0 && sigterm_seen)
	{
		ssize_t		rc pg_attribute_unused() = write(fd, "T", 1);
	}
}

/* The read end of the postmaster-death pipe: EOF once the postmaster died. */
int
api_postmaster_death_fd(void)
{
	return IsUnderPostmaster ? postmaster_alive_fds[POSTMASTER_FD_WATCH] : -1;
}

/* Consume every recorded reason to wake; true if there was one. */
static bool
take_recorded_wake(void)
{
	bool		woke = false;

	if (__atomic_exchange_n(&wake_pending, 0, __ATOMIC_SEQ_CST))
		woke = true;
	if (__atomic_exchange_n(&sighup_wake, 0, __ATOMIC_SEQ_CST) && (wake_flags & PGGO_WAKE_SIGHUP))
		woke = true;
	/* Never cleared: after SIGTERM a worker must not sleep again. */
	if (sigterm_seen && (wake_flags & PGGO_WAKE_SIGTERM))
		woke = true;
	return woke;
}

typedef struct WaitArgs
{
	long		timeout_ms;
	int			events;
} WaitArgs;

static void
op_wait(void *p)
{
	WaitArgs   *a = p;
	int			rc = 0;
	long		remaining = a->timeout_ms;
	PggoFrame  *frame = pggo_frame();

	bool		work = false;

	if (__atomic_exchange_n(&work_pending, 0, __ATOMIC_SEQ_CST))
		work = true;
	if (take_recorded_wake())
	{
		/* Its latch was set and maybe consumed by a statement: do not sleep. */
		ResetLatch(MyLatch);
		rc = WL_LATCH_SET;
	}
	else if (work)
	{
		/* Go's work is served first; the caller waits again after it. */
		ResetLatch(MyLatch);
	}
	else
	{
		for (;;)
		{
			int			flags = WL_LATCH_SET | WL_POSTMASTER_DEATH;
			long		chunk = -1;

			/* WaitLatch's timeout becomes an int inside: wait in pieces. */
			if (remaining >= 0)
			{
				flags |= WL_TIMEOUT;
				chunk = Min(remaining, (long) INT_MAX);
			}
			rc = WaitLatch(MyLatch, flags, chunk, my_wait_event);
			ResetLatch(MyLatch);
			if ((rc & WL_TIMEOUT) && remaining > chunk && !(rc & (WL_LATCH_SET | WL_POSTMASTER_DEATH)))
			{
				remaining -= chunk;
				continue;
			}
			break;
		}
		/* This wait served whatever was recorded meanwhile. */
		if (__atomic_exchange_n(&work_pending, 0, __ATOMIC_SEQ_CST))
		{
			work = true;
			/* Set by the work alone: not a wake-up of the worker's own. */
			if (!take_recorded_wake())
				rc &= ~WL_LATCH_SET;
		}
		else if (take_recorded_wake())
			rc |= WL_LATCH_SET;
	}
	a->events = (work ? PGGO_EV_WORK : 0) |
		((rc & WL_LATCH_SET) ? PGGO_EV_LATCH : 0) |
		((rc & WL_TIMEOUT) ? PGGO_EV_TIMEOUT : 0) |
		((rc & WL_POSTMASTER_DEATH) ? PGGO_EV_POSTMASTER_DEATH : 0);

	/* die() semantics until the worker takes over SIGTERM: FATAL here. */
	CHECK_FOR_INTERRUPTS();

	/*
	 * Reload only at the worker's own level: in a SQL function (an ordinary
	 * backend, or a function a worker's statement called) PostgreSQL reloads
	 * between statements itself.
	 */
	if (ConfigReloadPending && frame != NULL && frame->kind == PGGO_FRAME_WORKER)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * The worker's own wait event name: PostgreSQL 17's custom wait events
 * (pg_stat_activity.wait_event, pg_wait_events). Before 17 there are none:
 * waits report the Extension class's "Extension".
 */
static void
op_set_wait_event(void *p)
{
#if PG_VERSION_NUM >= 170000
	my_wait_event = WaitEventExtensionNew((const char *) p);
#else
	my_wait_event = PG_WAIT_EXTENSION;
#endif
}

int
api_set_wait_event(const char *name, pggo_error *err)
{
	if (strlen(name) == 0 || strlen(name) >= NAMEDATALEN)
	{
		pggo_set_error(err, PGGO_EUSAGE, "22023", "a wait event name needs 1 to 63 bytes");
		return -1;
	}
	return pggo_guard(op_set_wait_event, (void *) name, err);
}

int
api_wait_latch(long timeout_ms, int *events, pggo_error *err)
{
	WaitArgs	a = {.timeout_ms = timeout_ms,.events = 0};
	int			rc = pggo_guard(op_wait, &a, err);

	*events = a.events;
	return rc;
}

/*
 * Has the worker been asked to stop (SIGTERM, with the worker taking it
 * over)? Blocking waits outside WaitLatch (message queues) return early
 * then, or the worker could not end until its peer moved.
 */
bool
pggo_stop_requested(void)
{
	return sigterm_seen && (wake_flags & PGGO_WAKE_SIGTERM);
}

static void
op_postmaster_alive(void *p)
{
	*(bool *) p = PostmasterIsAlive();
}

int
api_postmaster_alive(pggo_error *err)
{
	bool		alive = true;

	if (pggo_guard(op_postmaster_alive, &alive, err) != 0)
		return -1;
	return alive ? 1 : 0;
}


/* ---------------------------------------------------------------------
 * SQL-callable: pggo_wake(pid int4) RETURNS bool,
 *				 pggo_wake_type(type text) RETURNS int4
 *
 * Wake a pggo worker (its WaitLatch returns) from SQL, e.g. after an INSERT
 * into its queue, by pid or by worker type (bgw_type, pg_stat_activity's
 * backend_type). The wake-up is SIGUSR2, which every background worker
 * ignores unless it is pggo's, where it is recorded: never lost to a
 * statement the worker is running, and it reloads no configuration. Only
 * background workers are signalled. pggo build's NAME.sql creates both and
 * revokes them from PUBLIC: GRANT EXECUTE to the roles that may wake
 * workers. Plain C: a backend calling them never loads Go.
 * ---------------------------------------------------------------------
 */
static bool
wake_worker(pid_t pid)
{
	if (pid <= 0 || GetBackgroundWorkerTypeByPid(pid) == NULL)
		return false;
	return kill(pid, SIGUSR2) == 0;
}

PG_FUNCTION_INFO_V1(pggo_wake);

Datum
pggo_wake(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(wake_worker(PG_GETARG_INT32(0)));
}

PG_FUNCTION_INFO_V1(pggo_wake_type);

Datum
pggo_wake_type(PG_FUNCTION_ARGS)
{
	char	   *type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			n = 0;

	for (uint32 i = 0; i < ProcGlobal->allProcCount; i++)
	{
		pid_t		pid = ProcGlobal->allProcs[i].pid;
		const char *t;

		if (pid <= 0 || pid == MyProcPid)
			continue;
		t = GetBackgroundWorkerTypeByPid(pid);
		if (t != NULL && strcmp(t, type) == 0 && kill(pid, SIGUSR2) == 0)
			n++;
	}
	PG_RETURN_INT32(n);
}


/* ---------------------------------------------------------------------
 * SQL-callable: pggo_set_latch(pid int4) RETURNS bool
 *
 * Wakes the latch of another PostgreSQL process, e.g. a queue worker after
 * an INSERT. Plain C, so a backend calling it never loads Go.
 *	 CREATE FUNCTION pggo_set_latch(int4) RETURNS bool
 *		AS '<library path>', 'pggo_set_latch' LANGUAGE C STRICT;
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(pggo_set_latch);

Datum
pggo_set_latch(PG_FUNCTION_ARGS)
{
	int			pid = PG_GETARG_INT32(0);
	PGPROC	   *proc = BackendPidGetProc(pid);

	if (proc == NULL)
		proc = AuxiliaryPidGetProc(pid);
	if (proc == NULL)
		PG_RETURN_BOOL(false);
	SetLatch(&proc->procLatch);
	PG_RETURN_BOOL(true);
}

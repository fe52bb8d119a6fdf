/*-------------------------------------------------------------------------
 *
 * loader_guard.c
 *		The error guard, call frames, transaction state and exits.
 *
 * Every call Go makes into PostgreSQL runs inside pggo_guard: it checks that
 * it runs on the main thread (PostgreSQL is single-threaded) and wraps the
 * call in PG_TRY, so an ereport(ERROR) comes back to Go as a value and never
 * longjmps across Go frames. What happens after an error depends on the
 * innermost frame (see pggo_loader.h):
 *
 *	- in a worker's transaction, the innermost savepoint Go opened is rolled
 *	  back, or the whole transaction if none was open, at once, as PL/pgSQL
 *	  does, so PostgreSQL is clean again before Go continues;
 *	- in a worker outside a transaction, what an ERROR may leave behind
 *	  (LWLocks, a condition variable sleep, a wait event) is released;
 *	- in a Go SQL function the error is kept and re-raised when Go returns:
 *	  the function runs inside its caller's statement, and only the caller
 *	  may clean up after it.
 *
 * The transaction state is PostgreSQL's: pggo keeps the nest level of each
 * savepoint Go opened and checks it against GetCurrentTransactionNestLevel()
 * before every statement; when they disagree the transaction is rolled back
 * and Go gets an error, never a silently dead transaction.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary for a bgworker */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"

/* These are used by transactions and error recovery */
#include <pthread.h>
#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "pggo_loader.h"

/* The worker's main thread: the only one allowed to call PostgreSQL. */
static pthread_t main_thread;
static bool main_thread_known = false;

static PggoFrame frames[PGGO_MAX_FRAMES];
static int	nframes = 0;

/* Where errors are copied before they are handed to Go. */
static MemoryContext error_cxt = NULL;

/*
 * pggo's transaction (bgworker.Transaction) and the savepoints Go opened in
 * it (spi.Savepoint, sqldriver's Tx), innermost last. A savepoint a failed
 * statement rolled back stays on the list, aborted, until Go ends it; the
 * aborted ones are always the innermost.
 */
typedef struct PggoSubxact
{
	int			nest_level;		/* GetCurrentTransactionNestLevel() inside it */
	MemoryContext cxt;			/* to return to when it ends */
	ResourceOwner owner;
	bool		aborted;
} PggoSubxact;

#define PGGO_MAX_SUBXACTS 64

static struct
{
	bool		open;			/* between tx_begin and tx_commit/rollback */
	bool		aborted;		/* rolled back after an error; Go must end it */
	int			nsubs;
	PggoSubxact subs[PGGO_MAX_SUBXACTS];
}			tx;


/* ---------------------------------------------------------------------
 * Threads and frames
 * ---------------------------------------------------------------------
 */
void
pggo_set_main_thread(void)
{
	if (!main_thread_known)
	{
		main_thread = pthread_self();
		main_thread_known = true;
	}
}

bool
pggo_on_main_thread(void)
{
	return main_thread_known && pthread_equal(pthread_self(), main_thread);
}

PggoFrame *
pggo_frame(void)
{
	return nframes > 0 ? &frames[nframes - 1] : NULL;
}

/* NULL when too deep: the caller raises the error (no Go frame yet). */
PggoFrame *
pggo_push_frame(PggoFrameKind kind)
{
	PggoFrame  *f;

	if (nframes >= PGGO_MAX_FRAMES)
		return NULL;
	if (error_cxt == NULL)
		error_cxt = AllocSetContextCreate(TopMemoryContext, "pggo errors",
										  ALLOCSET_SMALL_SIZES);
	f = &frames[nframes++];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->entry_cxt = CurrentMemoryContext;
	return f;
}

void
pggo_pop_frame(PggoFrame *f)
{
	Assert(nframes > 0 && f == &frames[nframes - 1]);
	nframes--;
}


/* ---------------------------------------------------------------------
 * Errors handed to Go
 * ---------------------------------------------------------------------
 */
/* Free the strings of an error that will not reach Go. */
void
pggo_free_error(pggo_error *e)
{
	free(e->message);
	free(e->detail);
	free(e->hint);
	free(e->context);
	memset(e, 0, sizeof(*e));
}

char *
pggo_xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

void
pggo_set_error(pggo_error *err, int code, const char *sqlstate, const char *message)
{
	memset(err, 0, sizeof(*err));
	err->code = code;
	err->elevel = ERROR;
	strlcpy(err->sqlstate, sqlstate, sizeof(err->sqlstate));
	err->message = pggo_xstrdup(message);
}

int
pggo_wrong_thread(pggo_error *err)
{
	pggo_set_error(err, PGGO_EWRONG_THREAD, "55000",
				   "PostgreSQL may only be called from the worker's own goroutine");
	return -1;
}

/* Fill err from ed, in malloc'd memory Go frees. */
static void
fill_error(pggo_error *err, ErrorData *ed)
{
	memset(err, 0, sizeof(*err));
	err->code = PGGO_EPG;
	err->elevel = ed->elevel;
	strlcpy(err->sqlstate, unpack_sql_state(ed->sqlerrcode), sizeof(err->sqlstate));
	err->message = pggo_xstrdup(ed->message);
	err->detail = pggo_xstrdup(ed->detail);
	err->hint = pggo_xstrdup(ed->hint);
	err->context = pggo_xstrdup(ed->context);
	/* SPI reports a syntax error's position as an internal one. */
	err->cursorpos = ed->cursorpos ? ed->cursorpos : ed->internalpos;
}

/* Raise an error Go returned, once no Go frame is left on the stack. */
void
pggo_raise_go_error(pggo_error *e)
{
	int			sqlerrcode = ERRCODE_INTERNAL_ERROR;
	char	   *message = pstrdup(e->message ? e->message : "Go code failed");
	char	   *detail = e->detail ? pstrdup(e->detail) : NULL;
	char	   *hint = e->hint ? pstrdup(e->hint) : NULL;
	char	   *context = e->context ? pstrdup(e->context) : NULL;

	if (strlen(e->sqlstate) == 5)
		sqlerrcode = MAKE_SQLSTATE(e->sqlstate[0], e->sqlstate[1], e->sqlstate[2],
								   e->sqlstate[3], e->sqlstate[4]);
	/* Go malloc'd them; the palloc'd copies go away with the error. */
	pggo_free_error(e);
	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 context ? errcontext("%s", context) : 0));
}


/* ---------------------------------------------------------------------
 * Transaction state, checked against PostgreSQL's
 * ---------------------------------------------------------------------
 */
static int
live_subxacts(void)
{
	int			n = 0;

	while (n < tx.nsubs && !tx.subs[n].aborted)
		n++;
	return n;
}

static void
reset_tx(void)
{
	tx.open = false;
	tx.aborted = false;
	tx.nsubs = 0;
}

static void
mark_tx_aborted(void)
{
	tx.aborted = true;
	for (int i = 0; i < tx.nsubs; i++)
		tx.subs[i].aborted = true;
}

/* The nest level PostgreSQL must be at if pggo's view is right. */
static int
expected_nest_level(void)
{
	if (!tx.open || tx.aborted)
		return 0;
	return 1 + live_subxacts();
}

static bool
state_agrees(void)
{
	int			expected = expected_nest_level();

	if (GetCurrentTransactionNestLevel() != expected)
		return false;
	if (expected > 0 && (!IsTransactionState() || IsAbortedTransactionBlockState()))
		return false;
	return true;
}

bool
pggo_tx_active(void)
{
	return tx.open && !tx.aborted;
}

static void
op_abort_all(void *p)
{
	if (IsTransactionOrTransactionBlock())
		AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(TopMemoryContext);
}

/*
 * pggo and PostgreSQL disagree about the transaction: a defect, or a
 * PostgreSQL call that ended a (sub)transaction behind pggo's back. Roll
 * everything back and say so, rather than run statements in a transaction
 * that can no longer commit.
 */
static void
state_mismatch(pggo_error *err)
{
	char		msg[256];
	pggo_error	ignored;
	int			actual = GetCurrentTransactionNestLevel();
	int			expected = expected_nest_level();

	memset(&ignored, 0, sizeof(ignored));
	mark_tx_aborted();			/* first: the abort runs as it is, not contained */
	if (pggo_guard(op_abort_all, NULL, &ignored) != 0)
		pggo_free_error(&ignored);
	snprintf(msg, sizeof(msg),
			 "pggo: PostgreSQL's transaction nest level is %d where pggo expected %d; the transaction was rolled back",
			 actual, expected);
	pggo_set_error(err, PGGO_ETXABORTED, "XX000", msg);
}

/* Can Go run SQL now? Sets err if not. */
bool
pggo_spi_usable(pggo_error *err)
{
	PggoFrame  *f = pggo_frame();

	if (!pggo_on_main_thread())
	{
		pggo_wrong_thread(err);
		return false;
	}
	if (f != NULL && f->kind == PGGO_FRAME_FUNCTION)
	{
		/* The caller's transaction and snapshot; an error is re-raised. */
		if (f->pending != NULL)
		{
			pggo_set_error(err, PGGO_ETXABORTED, "25P02",
						   "an earlier error in this SQL function is pending: return; PostgreSQL raises it when the function returns");
			return false;
		}
		if (!IsTransactionState())
		{
			pggo_set_error(err, PGGO_ENOTX, "25000", "SPI needs a transaction");
			return false;
		}
		return true;
	}
	if (f == NULL || f->kind != PGGO_FRAME_WORKER)
	{
		pggo_set_error(err, PGGO_EUSAGE, "0A000", "spi can only be used in a background worker or a Go SQL function");
		return false;
	}
	if (!tx.open)
	{
		pggo_set_error(err, PGGO_ENOTX, "25000", "SPI needs a transaction: call spi inside bgworker.Transaction");
		return false;
	}
	if (tx.aborted || live_subxacts() < tx.nsubs)
	{
		pggo_set_error(err, PGGO_ETXABORTED, "25P02",
					   tx.aborted ?
					   "current transaction is aborted, commands ignored until end of transaction block" :
					   "current savepoint is aborted, commands ignored until the savepoint ends");
		return false;
	}
	if (!state_agrees())
	{
		state_mismatch(err);
		return false;
	}
	return true;
}

/* Transactions and savepoints belong to the worker's own frame. */
static bool
in_worker_frame(pggo_error *err, const char *what)
{
	PggoFrame  *f = pggo_frame();
	char		msg[256];

	if (f != NULL && f->kind == PGGO_FRAME_WORKER)
		return true;
	snprintf(msg, sizeof(msg), "%s can only be used in a background worker's MainFunc%s", what,
			 f != NULL && f->kind == PGGO_FRAME_FUNCTION ?
			 ", not in a Go SQL function (it runs in its caller's transaction)" : "");
	pggo_set_error(err, PGGO_EUSAGE, "0A000", msg);
	return false;
}


/* ---------------------------------------------------------------------
 * The guard
 * ---------------------------------------------------------------------
 */

/* After an error in the worker's frame: leave PostgreSQL clean. */
static void
recover_worker(MemoryContext oldcxt, ResourceOwner oldowner)
{
	if (tx.open && !tx.aborted)
	{
		int			live = live_subxacts();

		if (live > 0 && GetCurrentTransactionNestLevel() == tx.subs[live - 1].nest_level)
		{
			/* Only the innermost savepoint is lost, as in PL/pgSQL. */
			PggoSubxact *s = &tx.subs[live - 1];

			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(s->cxt);
			CurrentResourceOwner = s->owner;
			s->aborted = true;
			return;
		}

		/*
		 * No savepoint of pggo's, or PostgreSQL is at a level pggo did not
		 * open: roll back the whole transaction, whatever its depth.
		 */
		AbortOutOfAnyTransaction();
		mark_tx_aborted();
		MemoryContextSwitchTo(TopMemoryContext);
		return;
	}
	if (IsTransactionOrTransactionBlock())
	{
		AbortOutOfAnyTransaction();
		MemoryContextSwitchTo(TopMemoryContext);
		return;
	}
	/* Outside a transaction: what AbortTransaction would have released. */
	LWLockReleaseAll();
	ConditionVariableCancelSleep();
	pgstat_report_wait_end();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
}

/*
 * After an error in the worker's frame: roll back the subtransaction of
 * guard_contained (at nest level contained, 0 if none) when PostgreSQL is
 * there, else recover_worker. Cleaning up can fail too, and must not
 * longjmp across Go either: then the worker exits (FATAL, exit code 1).
 */
static void
recover_or_exit(int contained, MemoryContext oldcxt, ResourceOwner oldowner)
{
	PG_TRY();
	{
		if (contained > 0 && GetCurrentTransactionNestLevel() == contained)
		{
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
		}
		else
			recover_worker(oldcxt, oldowner);
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		ereport(FATAL,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("pggo: could not roll back after an error; the worker exits")));
	}
	PG_END_TRY();
	MemoryContextReset(error_cxt);
}

static int
guard_contained(void (*fn) (void *), void *arg, pggo_error *err,
				MemoryContext oldcxt, ResourceOwner oldowner)
{
	volatile int level = 0;
	volatile bool failed = false;

	PG_TRY();
	{
		BeginInternalSubTransaction(NULL);
		level = GetCurrentTransactionNestLevel();
		MemoryContextSwitchTo(oldcxt);
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(error_cxt);
		ed = CopyErrorData();
		FlushErrorState();
		fill_error(err, ed);
		FreeErrorData(ed);
		failed = true;
	}
	PG_END_TRY();
	if (!failed)
		return 0;

	recover_or_exit(level, oldcxt, oldowner);
	return -1;
}

/*
 * Run fn(arg) under PG_TRY. On error, copy the error out for Go and leave
 * PostgreSQL in a state where the next call is safe (see the file header).
 */
int
pggo_guard(void (*fn) (void *), void *arg, pggo_error *err)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	PggoFrame  *frame = pggo_frame();
	volatile bool failed = false;

	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	if (frame == NULL)
	{
		pggo_set_error(err, PGGO_EUSAGE, "55000", "pggo: PostgreSQL was called outside a pggo worker or function");
		return -1;
	}
	if (frame->pending != NULL)
	{
		pggo_set_error(err, PGGO_ETXABORTED, "25P02",
					   "an earlier error in this SQL function is pending: return; PostgreSQL raises it when the function returns");
		return -1;
	}

	/*
	 * Go code is inside a savepoint a failed statement already rolled back
	 * (PostgreSQL runs at its parent's level): whatever it calls runs in a
	 * subtransaction of its own, so that an ERROR there stays in the
	 * savepoint Go is in, as Go's code reads, and never rolls back the
	 * enclosing one.
	 */
	if (frame->kind == PGGO_FRAME_WORKER && tx.open && !tx.aborted && live_subxacts() < tx.nsubs)
		return guard_contained(fn, arg, err, oldcxt, oldowner);

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		/* ErrorContext is current: copy into one that survives the flush. */
		MemoryContextSwitchTo(frame->kind == PGGO_FRAME_FUNCTION ? frame->entry_cxt : error_cxt);
		ed = CopyErrorData();
		FlushErrorState();
		fill_error(err, ed);
		if (frame->kind == PGGO_FRAME_FUNCTION)
			frame->pending = ed;
		else
			FreeErrorData(ed);
		CurrentResourceOwner = oldowner;
		failed = true;
	}
	PG_END_TRY();

	if (!failed)
		return 0;
	if (frame->kind == PGGO_FRAME_FUNCTION)
	{
		/* The caller's statement cleans up when the error is re-raised. */
		MemoryContextSwitchTo(oldcxt);
		return -1;
	}

	recover_or_exit(0, oldcxt, oldowner);
	return -1;
}


/* ---------------------------------------------------------------------
 * Transactions, as worker_spi runs them
 * ---------------------------------------------------------------------
 */
static void
op_begin(void *p)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	tx.open = true;
	tx.aborted = false;
	tx.nsubs = 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

int
api_tx_begin(pggo_error *err)
{
	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	if (!in_worker_frame(err, "bgworker.Transaction"))
		return -1;
	if (tx.open || IsTransactionOrTransactionBlock())
	{
		pggo_set_error(err, PGGO_EUSAGE, "25001", "a transaction is already in progress");
		return -1;
	}
	if (pggo_guard(op_begin, NULL, err) != 0)
	{
		reset_tx();
		return -1;
	}
	return 0;
}

static void
op_commit(void *p)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	reset_tx();
	pgstat_report_stat(false);
}

int
api_tx_commit(pggo_error *err)
{
	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	if (!in_worker_frame(err, "bgworker.Transaction"))
		return -1;
	if (!tx.open)
	{
		pggo_set_error(err, PGGO_EUSAGE, "25000", "no transaction is in progress");
		return -1;
	}
	if (tx.aborted)
	{
		pggo_set_error(err, PGGO_ETXABORTED, "25P02", "the transaction was rolled back after an error");
		return -1;
	}
	if (tx.nsubs > 0)
	{
		pggo_set_error(err, PGGO_EUSAGE, "25001", "a subtransaction is still open: release or roll it back before the transaction ends");
		return -1;
	}
	if (!state_agrees())
	{
		state_mismatch(err);
		return -1;
	}
	if (pggo_guard(op_commit, NULL, err) != 0)
	{
		reset_tx();
		return -1;
	}
	return 0;
}

static void
op_rollback(void *p)
{
	/* Also ends savepoints Go left open (AbortCurrentTransaction would stop
	 * at the innermost one). */
	if (IsTransactionOrTransactionBlock())
		AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(TopMemoryContext);
}

int
api_tx_rollback(pggo_error *err)
{
	int			rc = 0;

	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	if (!in_worker_frame(err, "bgworker.Transaction"))
		return -1;
	/* The abort ends every savepoint: none is left to contain it in. */
	tx.nsubs = 0;
	if (tx.open)
		rc = pggo_guard(op_rollback, NULL, err);
	reset_tx();
	return rc;
}

static void
op_sub_begin(void *p)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	PggoSubxact *s;

	BeginInternalSubTransaction(NULL);
	/* Statements keep running in the caller's (SPI's) memory context. */
	MemoryContextSwitchTo(cxt);
	s = &tx.subs[tx.nsubs];
	s->nest_level = GetCurrentTransactionNestLevel();
	s->cxt = cxt;
	s->owner = owner;
	s->aborted = false;
	tx.nsubs++;
}

static void
op_sub_end(void *p)
{
	bool		commit = *(bool *) p;
	PggoSubxact *s = &tx.subs[tx.nsubs - 1];

	if (commit)
		ReleaseCurrentSubTransaction();
	else
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(s->cxt);
	CurrentResourceOwner = s->owner;
	tx.nsubs--;
}

int
api_subxact(int op, int *level, pggo_error *err)
{
	PggoSubxact *s;
	bool		commit;

	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	if (op == PGGO_SUB_BEGIN)
	{
		if (!in_worker_frame(err, "spi.Savepoint"))
			return -1;
		if (!pggo_spi_usable(err))
			return -1;
		if (tx.nsubs >= PGGO_MAX_SUBXACTS)
		{
			pggo_set_error(err, PGGO_EUSAGE, "54000", "too many nested savepoints (at most 64)");
			return -1;
		}
		if (pggo_guard(op_sub_begin, NULL, err) != 0)
			return -1;
		*level = tx.nsubs;
		return 0;
	}

	/* Ending level *level: it must be the innermost one. */
	if (!in_worker_frame(err, "spi.Savepoint"))
		return -1;
	if (!tx.open)
	{
		pggo_set_error(err, PGGO_ETXABORTED, "25P02", "the savepoint's transaction has ended");
		return -1;
	}
	if (*level < 1 || *level != tx.nsubs)
	{
		pggo_set_error(err, PGGO_EUSAGE, "25001", "savepoints must end innermost first");
		return -1;
	}
	s = &tx.subs[tx.nsubs - 1];
	if (s->aborted)
	{
		/* Already rolled back by a failed statement (or with its transaction). */
		tx.nsubs--;
		if (op != PGGO_SUB_RELEASE)
			return 0;
		pggo_set_error(err, PGGO_ETXABORTED, "25P02",
					   tx.aborted ? "the transaction was rolled back after an error" :
					   "the savepoint was rolled back because a statement in it failed");
		return -1;
	}
	if (!state_agrees())
	{
		state_mismatch(err);
		tx.nsubs--;
		return -1;
	}
	commit = op == PGGO_SUB_RELEASE;
	if (pggo_guard(op_sub_end, &commit, err) != 0)
	{
		/* The failure rolled it back (or the whole transaction): it is over. */
		if (tx.nsubs >= *level)
			tx.nsubs = *level - 1;
		return -1;
	}
	return 0;
}


/* ---------------------------------------------------------------------
 * Exits
 * ---------------------------------------------------------------------
 */

/*
 * proc_exit runs PostgreSQL's clean-up (it aborts a transaction left open,
 * releases shared resources) and exits: the postmaster sees a clean exit
 * code. Only the main thread may run it; a raw exit from another thread
 * would skip the clean-up, which the postmaster treats as a crash.
 */
void
api_proc_exit(int code)
{
	if (pggo_on_main_thread() && pggo_frame() != NULL && pggo_frame()->kind != PGGO_FRAME_INIT)
		proc_exit(code);
}

/*
 * Go code asked to leave the process (os.Exit, log.Fatal, runtime.Goexit on
 * the worker's goroutine). A worker exits 0 with a LOG line, or logs an
 * ERROR and exits 1: the codes PostgreSQL restarts or unregisters, never one
 * that starts crash recovery. A backend (a Go SQL function) ends with FATAL,
 * which the client sees. Returns only when the caller cannot exit here: not
 * on the main thread, or in the init helper, which must leave with its own
 * exit code.
 */
int
api_exit_process(int code, const char *message, const char *detail)
{
	PggoFrame  *f = pggo_frame();

	if (!pggo_on_main_thread() || f == NULL || f->kind == PGGO_FRAME_INIT)
		return -1;
	if (f->kind == PGGO_FRAME_FUNCTION || MyBgworkerEntry == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg_internal("%s", message),
				 detail ? errdetail_internal("%s", detail) : 0));

	/* Raised and caught here, so the report never unwinds into Go. */
	PG_TRY();
	{
		if (code == 0)
			ereport(LOG, (errmsg_internal("%s", message),
						  detail ? errdetail_internal("%s", detail) : 0));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("%s", message),
					 detail ? errdetail_internal("%s", detail) : 0));
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();
	proc_exit(code == 0 ? 0 : 1);
	return -1;					/* not reached */
}

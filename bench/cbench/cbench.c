/*-------------------------------------------------------------------------
 *
 * cbench.c
 *		The native baseline of pggo's benchmark (see bench/ and BENCHMARKS.md):
 *		the same loops as the Go worker in bench/gobench, written as a plain C
 *		background worker the way PostgreSQL's src/test/modules/worker_spi
 *		is written. Whatever the Go worker costs beyond this is pggo's
 *		overhead.
 *
 * The harness preloads this library next to the pggo extension. _PG_init
 * registers one static worker, "cbench worker" (backend_type "cbench"),
 * which connects to cbench.database (default "postgres") and sleeps on its
 * latch. The harness inserts a row into bench_jobs (contender 'c') and sets
 * the worker's latch; the worker takes the oldest pending job, runs it,
 * timing it with CLOCK_MONOTONIC inside the process, and writes the elapsed
 * time, the process's CPU time (getrusage), the rows it handled, a checksum
 * and its memory (VmRSS, RssAnon, and VmHWM reset at the job's start, from
 * /proc/self/status) back into the job's row.
 *
 * Workloads (job.workload, job.n):
 *	select1				n x SPI_execute("SELECT 1"), planned each time, one transaction
 *	queryrow			n x SPI_execute("SELECT 1", true, 1) and the value read
 *						with SPI_getbinval: planned each time, one transaction
 *	select1_prepared	SPI_prepare once, n x SPI_execute_plan, one transaction
 *	insert				n x SPI_execute_with_args(INSERT ... ($1, $2)), one transaction
 *	insert_prepared		SPI_prepare the INSERT once, n x SPI_execute_plan, one transaction
 *	insert_tx			n x { begin; the same INSERT; commit }
 *	read				SELECT id, t, ts, n FROM bench_read_<n> through a cursor,
 *						2000 rows per fetch as pggo's spi.Query does, every value
 *						copied out: int8 and timestamptz by SPI_getbinval, text
 *						copied with text_to_cstring, numeric through its output
 *						function
 *	launch				n dynamic workers started one after the other; each
 *						records when its first line runs (table bench_launch)
 *	queue_64, queue_8k	a dynamic worker (cbench_queue_sender) sends n messages
 *						of 64 B / 8 kB through one 64 kB shm_mq in a DSM
 *						segment, each flushed at once as pggo's queues do;
 *						received here with shm_mq_receive, each checked
 *
 * Build (what the harness runs):
 *	cc $(pg_config --cppflags) $(pg_config --cflags) $(pg_config --cflags_sl) \
 *	   -I$(pg_config --includedir-server) -shared -o cbench.so cbench.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shm_mq.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_MODULE_MAGIC;

/* PostgreSQL 15 defines PGDLLEXPORT empty; be explicit about exports. */
#define CBENCH_EXPORT __attribute__((visibility("default")))

void		_PG_init(void);
CBENCH_EXPORT void cbench_main(Datum arg);
CBENCH_EXPORT void cbench_launched_main(Datum arg);
CBENCH_EXPORT void cbench_queue_sender(Datum arg);

static char *cbench_database = NULL;
static char library_path[MAXPGPATH];

typedef struct Job
{
	int64		id;
	char		workload[64];
	int64		n;
} Job;

typedef struct Outcome
{
	int64		rows;
	int64		checksum;
} Outcome;

static int64
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the whole process (all threads), user + system. */
static int64
process_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64) ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
		((int64) ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int64
realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Restart VmHWM from the current VmRSS, so that it is the peak of one job. */
static void
reset_peak(void)
{
	FILE	   *f = fopen("/proc/self/clear_refs", "w");

	if (f != NULL)
	{
		fputs("5", f);
		fclose(f);
	}
}

/* VmRSS, VmHWM and RssAnon (private memory) of this process in kB, -1 if unknown. */
static void
read_memory(int64 *rss_kb, int64 *hwm_kb, int64 *anon_kb)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];

	*rss_kb = -1;
	*hwm_kb = -1;
	*anon_kb = -1;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		long long	v;

		if (sscanf(line, "VmRSS: %lld kB", &v) == 1)
			*rss_kb = v;
		else if (sscanf(line, "VmHWM: %lld kB", &v) == 1)
			*hwm_kb = v;
		else if (sscanf(line, "RssAnon: %lld kB", &v) == 1)
			*anon_kb = v;
	}
	fclose(f);
}

/* A transaction with SPI connected and a snapshot, as worker_spi does. */
static void
begin_tx(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "cbench: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
commit_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

static void
check_rc(int rc, int want, const char *what)
{
	if (rc != want)
		elog(ERROR, "cbench: %s: %s", what, SPI_result_code_string(rc));
}


/* ---------------------------------------------------------------------
 * Workloads
 * ---------------------------------------------------------------------
 */
static void
w_select1(int64 n, Outcome *o)
{
	begin_tx();
	for (int64 i = 0; i < n; i++)
	{
		check_rc(SPI_execute("SELECT 1", false, 0), SPI_OK_SELECT, "SELECT 1");
		o->checksum += (int64) SPI_processed;
		SPI_freetuptable(SPI_tuptable);
	}
	commit_tx();
	o->rows = n;
}

static void
w_queryrow(int64 n, Outcome *o)
{
	begin_tx();
	for (int64 i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		d;

		check_rc(SPI_execute("SELECT 1", true, 1), SPI_OK_SELECT, "SELECT 1");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			o->checksum += DatumGetInt32(d);
		SPI_freetuptable(SPI_tuptable);
	}
	commit_tx();
	o->rows = n;
}

static void
w_select1_prepared(int64 n, Outcome *o)
{
	SPIPlanPtr	plan;

	begin_tx();
	plan = SPI_prepare("SELECT 1", 0, NULL);
	if (plan == NULL)
		elog(ERROR, "cbench: SPI_prepare: %s", SPI_result_code_string(SPI_result));
	for (int64 i = 0; i < n; i++)
	{
		check_rc(SPI_execute_plan(plan, NULL, NULL, false, 0), SPI_OK_SELECT, "SELECT 1 (prepared)");
		o->checksum += (int64) SPI_processed;
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_freeplan(plan);
	commit_tx();
	o->rows = n;
}

static const char insert_sql[] = "INSERT INTO bench_ins_c(id, note) VALUES ($1, $2)";

static void
insert_one(int64 id, Datum note)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(id);
	values[1] = note;
	check_rc(SPI_execute_with_args(insert_sql, 2, types, values, NULL, false, 0),
			 SPI_OK_INSERT, "INSERT");
}

static void
w_insert(int64 n, Outcome *o)
{
	Datum		note;

	begin_tx();
	note = PointerGetDatum(cstring_to_text("x"));
	for (int64 i = 1; i <= n; i++)
	{
		insert_one(i, note);
		o->checksum += (int64) SPI_processed;
	}
	commit_tx();
	o->rows = n;
}

static void
w_insert_prepared(int64 n, Outcome *o)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	SPIPlanPtr	plan;

	begin_tx();
	plan = SPI_prepare(insert_sql, 2, types);
	if (plan == NULL)
		elog(ERROR, "cbench: SPI_prepare: %s", SPI_result_code_string(SPI_result));
	values[1] = PointerGetDatum(cstring_to_text("x"));
	for (int64 i = 1; i <= n; i++)
	{
		values[0] = Int64GetDatum(i);
		check_rc(SPI_execute_plan(plan, values, NULL, false, 0), SPI_OK_INSERT, "INSERT (prepared)");
		o->checksum += (int64) SPI_processed;
	}
	SPI_freeplan(plan);
	commit_tx();
	o->rows = n;
}

static void
w_insert_tx(int64 n, Outcome *o)
{
	for (int64 i = 1; i <= n; i++)
	{
		begin_tx();
		insert_one(i, PointerGetDatum(cstring_to_text("x")));
		o->checksum += (int64) SPI_processed;
		commit_tx();
	}
	o->rows = n;
}

static Datum
get_col(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		elog(ERROR, "cbench: unexpected NULL in column %d", col);
	return d;
}

/* Rows per cursor fetch: the same batch as pggo's spi.Query (batchRows). */
#define READ_BATCH 2000

static void
w_read(int64 n, Outcome *o)
{
	char		sql[128];
	SPIPlanPtr	plan;
	Portal		portal;
	Oid			outfn;
	bool		varlena;
	FmgrInfo	numeric_out;
	MemoryContext rowcxt,
				old;

	begin_tx();
	snprintf(sql, sizeof(sql), "SELECT id, t, ts, n FROM bench_read_%lld", (long long) n);
	plan = SPI_prepare(sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "cbench: SPI_prepare: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, false);
	getTypeOutputInfo(NUMERICOID, &outfn, &varlena);
	fmgr_info(outfn, &numeric_out);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "cbench row", ALLOCSET_SMALL_SIZES);
	for (;;)
	{
		SPITupleTable *tt;
		TupleDesc	desc;

		SPI_cursor_fetch(portal, true, READ_BATCH);
		if (SPI_processed == 0)
			break;
		tt = SPI_tuptable;
		desc = tt->tupdesc;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = tt->vals[r];
			int64		id;
			char	   *t;
			TimestampTz ts;
			char	   *num;
			int64		unix_s;

			old = MemoryContextSwitchTo(rowcxt);
			id = DatumGetInt64(get_col(tup, desc, 1));
			t = TextDatumGetCString(get_col(tup, desc, 2));
			ts = DatumGetTimestampTz(get_col(tup, desc, 3));
			num = OutputFunctionCall(&numeric_out, get_col(tup, desc, 4));

			/* Seconds since 1970, floored, as Go's time.Time.Unix() gives them. */
			unix_s = ts / USECS_PER_SEC - (ts % USECS_PER_SEC < 0 ? 1 : 0) +
				(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
			o->checksum += id + (int64) strlen(t) + (int64) strlen(num) + unix_s % 1000;
			o->rows++;
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(tt);
	}
	MemoryContextDelete(rowcxt);
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	commit_tx();
}

/*
 * Start n dynamic workers one after the other, each after the previous one
 * has exited. start_ns is taken just before RegisterDynamicBackgroundWorker;
 * each worker stores the time of its first line (cbench_launched_main).
 */
static void
w_launch(int64 job_id, int64 n, Outcome *o)
{
	int64	   *start = palloc(sizeof(int64) * Max(n, 1));

	for (int64 i = 0; i < n; i++)
	{
		BackgroundWorker w;
		BackgroundWorkerHandle *handle;

		memset(&w, 0, sizeof(w));
		snprintf(w.bgw_name, BGW_MAXLEN, "cbench launched %lld", (long long) i);
		snprintf(w.bgw_type, BGW_MAXLEN, "cbench_launched");
		strlcpy(w.bgw_library_name, library_path, sizeof(w.bgw_library_name));
		strlcpy(w.bgw_function_name, "cbench_launched_main", sizeof(w.bgw_function_name));
		snprintf(w.bgw_extra, BGW_EXTRALEN, "%lld", (long long) job_id);
		w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		w.bgw_start_time = BgWorkerStart_RecoveryFinished;
		w.bgw_restart_time = BGW_NEVER_RESTART;
		w.bgw_main_arg = Int64GetDatum(i);
		w.bgw_notify_pid = MyProcPid;

		start[i] = realtime_ns();
		if (!RegisterDynamicBackgroundWorker(&w, &handle))
			elog(ERROR, "cbench: could not register dynamic worker %lld (max_worker_processes?)", (long long) i);
		if (WaitForBackgroundWorkerShutdown(handle) != BGWH_STOPPED)
			elog(ERROR, "cbench: postmaster died");
		pfree(handle);
	}

	begin_tx();
	for (int64 i = 0; i < n; i++)
	{
		Oid			types[3] = {INT8OID, INT8OID, INT8OID};
		Datum		values[3];

		values[0] = Int64GetDatum(start[i]);
		values[1] = Int64GetDatum(job_id);
		values[2] = Int64GetDatum(i);
		check_rc(SPI_execute_with_args("UPDATE bench_launch SET start_ns = $1 WHERE job = $2 AND seq = $3",
									   3, types, values, NULL, false, 0),
				 SPI_OK_UPDATE, "UPDATE bench_launch");
		if (SPI_processed != 1)
			elog(ERROR, "cbench: launched worker %lld did not record its first line", (long long) i);
		o->rows++;
	}
	commit_tx();
	pfree(start);
}

/* A dynamically launched worker: note when its first line ran, then leave. */
void
cbench_launched_main(Datum arg)
{
	int64		first = realtime_ns();
	int64		seq = DatumGetInt64(arg);
	int64		job = strtoll(MyBgworkerEntry->bgw_extra, NULL, 10);
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];

	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(cbench_database, NULL, 0);
	begin_tx();
	values[0] = Int64GetDatum(job);
	values[1] = Int64GetDatum(seq);
	values[2] = Int64GetDatum(first);
	check_rc(SPI_execute_with_args("INSERT INTO bench_launch(contender, job, seq, first_ns) VALUES ('c', $1, $2, $3)",
								   3, types, values, NULL, false, 0),
			 SPI_OK_INSERT, "INSERT bench_launch");
	commit_tx();
}


/*
 * queue_*: the receiving end here, the sender a dynamic worker that gets
 * the segment's handle as its argument.
 */
#define CBENCH_QUEUE_SIZE 65536

static void
w_queue(int64 n, int size, Outcome *o)
{
	dsm_segment *seg = dsm_create(CBENCH_QUEUE_SIZE, 0);
	shm_mq	   *mq = shm_mq_create(dsm_segment_address(seg), CBENCH_QUEUE_SIZE);
	shm_mq_handle *mqh;
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	Size		len;
	void	   *data;

	shm_mq_set_receiver(mq, MyProc);
	memset(&w, 0, sizeof(w));
	snprintf(w.bgw_name, BGW_MAXLEN, "cbench queue sender");
	snprintf(w.bgw_type, BGW_MAXLEN, "cbench_queue");
	strlcpy(w.bgw_library_name, library_path, sizeof(w.bgw_library_name));
	strlcpy(w.bgw_function_name, "cbench_queue_sender", sizeof(w.bgw_function_name));
	snprintf(w.bgw_extra, BGW_EXTRALEN, "%lld %d", (long long) n, size);
	w.bgw_flags = BGWORKER_SHMEM_ACCESS;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
		elog(ERROR, "cbench: could not register the queue sender (max_worker_processes?)");
	mqh = shm_mq_attach(mq, seg, handle);
	for (int64 i = 0; i < n; i++)
	{
		int64		seq;

		if (shm_mq_receive(mqh, &len, &data, false) != SHM_MQ_SUCCESS)
			elog(ERROR, "cbench: message %lld: the sender detached", (long long) i);
		memcpy(&seq, data, sizeof(seq));
		if (len != (Size) size || seq != i)
			elog(ERROR, "cbench: message %lld: %zu bytes, sequence %lld", (long long) i, (size_t) len, (long long) seq);
		o->rows++;
		o->checksum++;
	}
	if (shm_mq_receive(mqh, &len, &data, false) != SHM_MQ_DETACHED)
		elog(ERROR, "cbench: a message after the last one");
	if (WaitForBackgroundWorkerShutdown(handle) != BGWH_STOPPED)
		elog(ERROR, "cbench: postmaster died");
	pfree(handle);
	dsm_detach(seg);
}

void
cbench_queue_sender(Datum arg)
{
	long long	n = 0;
	int			size = 64;
	dsm_segment *seg;
	shm_mq_handle *mqh;
	char	   *buf;

	BackgroundWorkerUnblockSignals();
	if (sscanf(MyBgworkerEntry->bgw_extra, "%lld %d", &n, &size) != 2 || size < 8)
		elog(ERROR, "cbench: bad bgw_extra \"%s\"", MyBgworkerEntry->bgw_extra);
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		elog(ERROR, "cbench: the queue's segment is gone");
	shm_mq_set_sender(dsm_segment_address(seg), MyProc);
	mqh = shm_mq_attach(dsm_segment_address(seg), seg, NULL);
	buf = palloc0(size);
	for (int64 i = 0; i < n; i++)
	{
		memcpy(buf, &i, sizeof(i));
		if (shm_mq_send(mqh, size, buf, false, true) != SHM_MQ_SUCCESS)
			elog(ERROR, "cbench: message %lld: the receiver detached", (long long) i);
	}
	shm_mq_detach(mqh);
	dsm_detach(seg);
}


/* ---------------------------------------------------------------------
 * Jobs
 * ---------------------------------------------------------------------
 */
static bool
fetch_job(Job *job)
{
	bool		found = false;

	begin_tx();
	check_rc(SPI_execute("SELECT id, workload, n FROM bench_jobs"
						 " WHERE contender = 'c' AND status = 'pending' ORDER BY id LIMIT 1",
						 true, 1),
			 SPI_OK_SELECT, "fetching a job");
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		job->id = DatumGetInt64(get_col(tup, desc, 1));
		strlcpy(job->workload, TextDatumGetCString(get_col(tup, desc, 2)), sizeof(job->workload));
		job->n = DatumGetInt64(get_col(tup, desc, 3));
		found = true;
	}
	commit_tx();
	return found;
}

static void
finish_job(const Job *job, int64 elapsed_ns, int64 cpu_ns, const Outcome *o, int64 rss_before,
		   int64 rss_after, int64 hwm, int64 anon_after, const char *error)
{
	Oid			types[10] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID};
	Datum		values[10];
	char		nulls[11] = "          ";

	begin_tx();
	values[0] = Int64GetDatum(elapsed_ns);
	values[1] = Int64GetDatum(o->rows);
	values[2] = Int64GetDatum(o->checksum);
	values[3] = Int64GetDatum(rss_before);
	values[4] = Int64GetDatum(rss_after);
	values[5] = Int64GetDatum(hwm);
	if (error != NULL)
		values[6] = CStringGetTextDatum(error);
	else
		nulls[6] = 'n';
	values[7] = Int64GetDatum(job->id);
	values[8] = Int64GetDatum(anon_after);
	values[9] = Int64GetDatum(cpu_ns);
	check_rc(SPI_execute_with_args("UPDATE bench_jobs SET"
								   " status = CASE WHEN $7 IS NULL THEN 'done' ELSE 'failed' END,"
								   " elapsed_ns = $1, rows = $2, checksum = $3,"
								   " rss_before_kb = $4, rss_after_kb = $5, hwm_kb = $6, anon_after_kb = $9,"
								   " cpu_ns = $10, error = $7, finished = clock_timestamp() WHERE id = $8",
								   10, types, values, nulls, false, 0),
			 SPI_OK_UPDATE, "recording the job");
	commit_tx();
}

static void
run_job(const Job *job)
{
	MemoryContext cxt = CurrentMemoryContext;
	Outcome		o = {0, 0};
	int64		rss_before,
				rss_after,
				hwm,
				anon;
	volatile int64 elapsed = 0;
	volatile int64 cpu = 0;
	static char error[1024];
	bool		failed = false;

	reset_peak();
	read_memory(&rss_before, &hwm, &anon);
	pgstat_report_activity(STATE_RUNNING, job->workload);
	PG_TRY();
	{
		int64		t0 = monotonic_ns();
		int64		c0 = process_cpu_ns();

		if (strcmp(job->workload, "select1") == 0)
			w_select1(job->n, &o);
		else if (strcmp(job->workload, "queryrow") == 0)
			w_queryrow(job->n, &o);
		else if (strcmp(job->workload, "select1_prepared") == 0)
			w_select1_prepared(job->n, &o);
		else if (strcmp(job->workload, "insert") == 0)
			w_insert(job->n, &o);
		else if (strcmp(job->workload, "insert_prepared") == 0)
			w_insert_prepared(job->n, &o);
		else if (strcmp(job->workload, "insert_tx") == 0)
			w_insert_tx(job->n, &o);
		else if (strcmp(job->workload, "read") == 0)
			w_read(job->n, &o);
		else if (strcmp(job->workload, "launch") == 0)
			w_launch(job->id, job->n, &o);
		else if (strcmp(job->workload, "queue_64") == 0)
			w_queue(job->n, 64, &o);
		else if (strcmp(job->workload, "queue_8k") == 0)
			w_queue(job->n, 8192, &o);
		else
			elog(ERROR, "cbench: unknown workload \"%s\"", job->workload);
		elapsed = monotonic_ns() - t0;
		cpu = process_cpu_ns() - c0;
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
		strlcpy(error, ed->message ? ed->message : "error", sizeof(error));
		FreeErrorData(ed);
		AbortCurrentTransaction();
		failed = true;
	}
	PG_END_TRY();
	read_memory(&rss_after, &hwm, &anon);
	pgstat_report_activity(STATE_IDLE, NULL);
	finish_job(job, elapsed, cpu, &o, rss_before, rss_after, hwm, anon, failed ? error : NULL);
}

void
cbench_main(Datum arg)
{
	/* SIGTERM: die(), so pg_terminate_backend ends the worker (exit 1, restarted). */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(cbench_database, NULL, 0);

	for (;;)
	{
		Job			job;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 60000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		while (fetch_job(&job))
			run_job(&job);
	}
}

void
_PG_init(void)
{
	BackgroundWorker w;
	Dl_info		info;
	char	   *path;

	DefineCustomStringVariable("cbench.database",
							   "Database the cbench worker connects to.",
							   NULL, &cbench_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("cbench");

	if (dladdr((void *) &cbench_main, &info) == 0 || info.dli_fname == NULL ||
		(path = realpath(info.dli_fname, NULL)) == NULL)
		elog(ERROR, "cbench: cannot find the path of this library");
	strlcpy(library_path, path, sizeof(library_path));
	free(path);
	if (strlen(library_path) >= sizeof(w.bgw_library_name))
		elog(ERROR, "cbench: the library path \"%s\" is longer than bgw_library_name allows", library_path);

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&w, 0, sizeof(w));
	snprintf(w.bgw_name, BGW_MAXLEN, "cbench worker");
	snprintf(w.bgw_type, BGW_MAXLEN, "cbench");
	strlcpy(w.bgw_library_name, library_path, sizeof(w.bgw_library_name));
	strlcpy(w.bgw_function_name, "cbench_main", sizeof(w.bgw_function_name));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 1;
	w.bgw_main_arg = (Datum) 0;
	RegisterBackgroundWorker(&w);
}

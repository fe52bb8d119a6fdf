/*
 * pggo_abi.h: the contract between the two halves of a pggo extension.
 *
 *   - the loader (loader_*.c, see pggo_loader.h), plain C, preloaded by PostgreSQL. It is the
 *     only code that calls PostgreSQL, always inside PG_TRY, always on the
 *     process's main thread;
 *   - the Go library, opened by the loader only inside forked processes. It
 *     calls PostgreSQL exclusively through the pggo_api table below, so it has
 *     no undefined PostgreSQL symbols and does not depend on a server version.
 *
 * This header must compile without PostgreSQL's headers (cgo includes it).
 * Bump PGGO_ABI_VERSION on any change to the structs or the table.
 */
#ifndef PGGO_ABI_H
#define PGGO_ABI_H

#include <stddef.h>
#include <stdint.h>

#define PGGO_ABI_VERSION 10

/* Result codes of every pggo_api call that can fail. */
enum
{
	PGGO_OK = 0,
	PGGO_EPG = 1,				/* PostgreSQL raised an error: see pggo_error */
	PGGO_EWRONG_THREAD = 2,		/* called from a thread other than the worker's */
	PGGO_ENOTX = 3,				/* needs a transaction and none is open */
	PGGO_ETXABORTED = 4,		/* the transaction was already rolled back */
	PGGO_EUSAGE = 5,			/* misuse described in message */
	PGGO_ENOSLOT = 6			/* register_dynamic: no free worker slot (nothing raised) */
};

/* Worker flags and start times, as pggo names them (mapped to PostgreSQL's). */
enum
{
	PGGO_SHMEM_ACCESS = 1,
	PGGO_DATABASE_CONNECTION = 2,
	PGGO_INTERRUPTIBLE = 4		/* BGWORKER_INTERRUPTIBLE, 19+ */
};
enum
{
	PGGO_START_POSTMASTER = 0,
	PGGO_START_CONSISTENT = 1,
	PGGO_START_RECOVERY_FINISHED = 2
};
/* How a worker connects (pggo_api.connect). */
enum
{
	PGGO_CONNECT_BY_OID = 1,
	PGGO_CONNECT_BYPASS_ALLOWCONN = 2,		/* BGWORKER_BYPASS_ALLOWCONN */
	PGGO_CONNECT_BYPASS_ROLELOGINCHECK = 4	/* BGWORKER_BYPASS_ROLELOGINCHECK, 17+ */
};
/* Signal wake flags (bgworker.SignalWakeFlags). */
enum
{
	PGGO_WAKE_SIGHUP = 1,
	PGGO_WAKE_SIGTERM = 2
};
/* WaitLatch events reported back to Go. */
enum
{
	PGGO_EV_LATCH = 1,
	PGGO_EV_TIMEOUT = 2,
	PGGO_EV_POSTMASTER_DEATH = 4,
	PGGO_EV_WORK = 8			/* Go queued work for the worker's thread */
};

/* An error copied out of PostgreSQL's ErrorData; strings are malloc'd. */
typedef struct pggo_error
{
	int			code;
	int			elevel;
	char		sqlstate[6];
	char	   *message;
	char	   *detail;
	char	   *hint;
	char	   *context;
	int			cursorpos;
} pggo_error;

/* A byte buffer handed to Go (see package internal/wire). Results of the
 * spi_* calls stay owned by the loader and are valid until the next call:
 * Go copies them at once. */
typedef struct pggo_buf
{
	char	   *data;
	size_t		len;
	uint64_t	processed;
	int			more;			/* cursor batches: the cursor may hold more rows */
} pggo_buf;

/* One background worker, as the BackgroundWorker struct describes it. */
typedef struct pggo_spec
{
	const char *name;
	const char *type;
	const char *library;
	const char *function;
	const char *extra;
	int			flags;
	int			start_time;
	int			restart_time;	/* seconds, -1 = never restart */
	uintptr_t	arg;
	int			notify_pid;
} pggo_spec;

/* Functions the loader offers to Go. All except set_my_latch and the flag
 * readers check that they run on the worker's main thread. */
typedef struct pggo_api
{
	int			abi_version;
	const char *loader_path;	/* absolute path of the preloaded library */
	int			pg_version_num; /* PG_VERSION_NUM the loader was built for */
	int			bgw_maxlen;		/* BGW_MAXLEN: name, type, function */
	int			bgw_extralen;	/* BGW_EXTRALEN: extra */
	int			library_maxlen; /* size of bgw_library_name */

	void		(*free) (void *p);
	int			(*on_main_thread) (void);
	int			(*has_function) (const char *name, char **why);
	int			(*worker_info) (pggo_spec *out);
	void		(*attach_signals) (int wake_flags);
	int			(*take_sighup) (void);
	int			(*take_sigterm) (void);
	int			(*sigterm_seen) (void);
	void		(*set_my_latch) (void);
	int			(*wait_latch) (long timeout_ms, int *events, pggo_error *err);
	int			(*postmaster_alive) (pggo_error *err);
	void		(*proc_exit) (int code);
	/* how: PGGO_CONNECT_* bits. */
	int			(*connect) (const char *db, const char *user, unsigned dboid,
							unsigned useroid, int how, pggo_error *err);
	int			(*tx_begin) (pggo_error *err);
	int			(*tx_commit) (pggo_error *err);
	int			(*tx_rollback) (pggo_error *err);
	/* maxrows < 0: run to completion, return only the count, no rows. */
	int			(*spi_exec) (const char *sql, size_t sqllen,
							 const char *params, size_t paramslen, int nparams,
							 int64_t maxrows, pggo_buf *out, pggo_error *err);
	int			(*report_activity) (int running, const char *query, size_t len,
									pggo_error *err);
	int			(*log) (int level, const char *msg, size_t len, pggo_error *err);
	int			(*get_setting) (const char *name, char **value, pggo_error *err);
	int			(*my_proc_pid) (void);
	unsigned	(*my_database_id) (void);
	/* *handle is malloc'd: free it with free from any thread. */
	int			(*register_dynamic) (const pggo_spec *spec, void **handle, pggo_error *err);
	int			(*bgw_handle) (void *handle, int op, int *pid, int *status, pggo_error *err);

	/* Prepared plans (kept across transactions) and cursors. *types_out is
	 * malloc'd; a plan is freed only by spi_free_plan. */
	int			(*spi_prepare) (const char *sql, size_t sqllen, const unsigned *types, int ntypes,
								void **plan, unsigned **types_out, int *ntypes_out, pggo_error *err);
	int			(*spi_free_plan) (void *plan, pggo_error *err);
	int			(*spi_exec_plan) (void *plan, const char *params, size_t paramslen, int nparams,
								  int64_t maxrows, pggo_buf *out, pggo_error *err);
	/* Runs plan (or sql when plan is NULL); a statement that returns rows
	 * gets a cursor, *portal (malloc'd) names it and *out holds the first
	 * batch; others run to completion and *portal is NULL. */
	int			(*spi_query) (void *plan, const char *sql, size_t sqllen, const char *params,
							  size_t paramslen, int nparams, long batch, pggo_buf *out,
							  char **portal, pggo_error *err);
	int			(*spi_fetch) (const char *portal, long batch, pggo_buf *out, pggo_error *err);
	int			(*spi_close_cursor) (const char *portal, pggo_error *err);
	int			(*subxact) (int op, int *level, pggo_error *err);

	/* Leaves the process as PostgreSQL would (see loader_guard.c); returns
	 * -1 only where it cannot: another thread, or the init helper. */
	int			(*exit_process) (int code, const char *message, const char *detail);
	/* One parameter (wire format) into a Datum of type and back as text
	 * (malloc'd); for the fuzz tests of the parameter path. */
	int			(*param_roundtrip) (const char *params, size_t len, unsigned type,
									char **text, int *isnull, pggo_error *err);

	/* The Go-native runtime (bgworker.Context, Do, the slog handler). Any
	 * thread may call these three. */
	void		(*notify_work) (void);
	void		(*set_notify_fd) (int fd);
	int			(*postmaster_death_fd) (void);

	/*
	 * Shared memory regions and message queues (package shmem;
	 * loader_shmem.c, loader_mq.c). shmem_region finds a region reserved at
	 * server start; shmem_lock takes (PGGO_LOCK_SHARED, _EXCLUSIVE) or
	 * releases its LWLock. A queue is an opaque malloc'd pointer, freed by
	 * mq_detach; mq_send/mq_receive return a PGGO_MQ_* result (or -1 with
	 * err), and *data of mq_receive stays valid until the next call.
	 */
	int			(*shmem_region) (const char *name, uint64_t size, uint32_t align, void **data,
								 uint32_t **initialised, int *index, pggo_error *err);
	int			(*shmem_lock) (int index, int mode, pggo_error *err);
	int			(*mq_create) (size_t size, int role, void **mq, uint32_t *handle, pggo_error *err);
	int			(*mq_attach) (uint32_t handle, int role, void **mq, pggo_error *err);
	int			(*mq_set_worker) (void *mq, void *bgw_handle, pggo_error *err);
	int			(*mq_send) (void *mq, const char *data, size_t len, int nowait, pggo_error *err);
	int			(*mq_receive) (void *mq, char **data, size_t *len, int nowait, pggo_error *err);
	int			(*mq_detach) (void *mq, pggo_error *err);
	/* GetUserId(): the role to hand work to a worker as (pg_background). */
	unsigned	(*my_user_id) (void);

	/* ---- Performance (issue 10): plan cache, cursor-free rows, batches.
	 * Appended as one block; keep it together when merging. ---- */

	/* spi_prepare for spi's automatic plan cache: only a single SELECT,
	 * INSERT, UPDATE, DELETE or MERGE is worth keeping (and safe to analyse
	 * before it runs). For anything else it succeeds with *plan NULL. */
	int			(*spi_prepare_cached) (const char *sql, size_t sqllen, const unsigned *types,
									   int ntypes, void **plan, unsigned **types_out,
									   int *ntypes_out, pggo_error *err);
	/* At most the first row of plan (or sql when plan is NULL), without a
	 * cursor: a single SELECT runs only as far as its first row; any other
	 * statement runs to completion. */
	int			(*spi_query_row) (void *plan, const char *sql, size_t sqllen, const char *params,
								  size_t paramslen, int nparams, pggo_buf *out, pggo_error *err);
	/* Runs plan once per argument row: params holds nrows x nparams
	 * records. *processed sums the rows each run processed. */
	int			(*spi_exec_batch) (void *plan, const char *params, size_t paramslen, int nparams,
								   int64_t nrows, uint64_t *processed, pggo_error *err);

	/* The wait event WaitLatch reports: a custom one on PostgreSQL 17+. */
	int			(*set_wait_event) (const char *name, pggo_error *err);

	/* ---- Declared settings (issue 12). ---- */

	/* The exact value of a real setting this loader defined in this process
	 * (GetConfigOption prints only 6 digits): 1 with *value, 0 if the
	 * setting is not one (a placeholder: read its text), -1 on another
	 * thread than the main one. */
	int			(*get_real_setting) (const char *name, double *value);
} pggo_api;

/* Shared memory regions: limits, lock modes (pggo_api.shmem_lock). */
#define PGGO_REGION_NAMELEN 40
#define PGGO_MAX_REGIONS 64
#define PGGO_REGION_MAXSIZE ((uint64_t) 1 << 30)
enum
{
	PGGO_LOCK_RELEASE = 0,
	PGGO_LOCK_SHARED = 1,
	PGGO_LOCK_EXCLUSIVE = 2
};

/* Message queues: the role of this end, and results of send/receive. */
enum
{
	PGGO_MQ_SENDER = 1,
	PGGO_MQ_RECEIVER = 2
};
enum
{
	PGGO_MQ_OK = 0,
	PGGO_MQ_WOULD_BLOCK = 1,
	PGGO_MQ_DETACHED = 2,
	PGGO_MQ_INTERRUPTED = 3		/* SIGTERM, taken over by the worker */
};

/* A region declared in Go, as the init helper reports it (pggo_go_regions). */
typedef struct pggo_region
{
	const char *name;
	uint64_t	size;
	uint32_t	align;
} pggo_region;

/* Operations on a dynamic worker's handle (pggo_api.bgw_handle). */
enum
{
	PGGO_BGW_GET_PID = 0,
	PGGO_BGW_WAIT_STARTUP = 1,
	PGGO_BGW_WAIT_SHUTDOWN = 2,
	PGGO_BGW_TERMINATE = 3
};
/* Dynamic worker states, as BgwHandleStatus. */
enum
{
	PGGO_BGWH_STARTED = 0,
	PGGO_BGWH_NOT_YET_STARTED = 1,
	PGGO_BGWH_STOPPED = 2,
	PGGO_BGWH_POSTMASTER_DIED = 3
};

/* Subtransaction operations (pggo_api.subxact). */
enum
{
	PGGO_SUB_BEGIN = 0,
	PGGO_SUB_RELEASE = 1,
	PGGO_SUB_ROLLBACK = 2
};

/* Log levels accepted by pggo_api.log. */
enum
{
	PGGO_LOG_DEBUG = 1,
	PGGO_LOG_LOG = 2,
	PGGO_LOG_INFO = 3,
	PGGO_LOG_NOTICE = 4,
	PGGO_LOG_WARNING = 5
};

/*
 * Exported by the Go library (cgo //export), looked up with dlsym.
 *
 * pggo_go_collect runs the extension's OnInit hooks in the init helper and
 * returns the validated workers (malloc'd array; strings malloc'd) or an error
 * message. pggo_go_run_worker runs a worker function and returns non-zero with
 * *exit filled when the worker must end with an ERROR (exit code 1).
 */
typedef int (*pggo_go_collect_fn) (const pggo_api *api, pggo_spec **specs,
								   int *nspecs, char **errmsg);
/*
 * pggo_go_regions, called in the init helper after pggo_go_collect succeeded,
 * returns the shared memory regions declared (malloc'd; never freed: the
 * helper exits).
 */
typedef int (*pggo_go_regions_fn) (pggo_region **regions, int *nregions);

/*
 * Declared settings (package guc), sent by the init helper after the
 * regions. pggo_go_settings returns them encoded (malloc'd; the helper
 * never frees it, a process that defines them late does): u32 count, then
 * per setting u8 kind, u8 context, u32 flags (PGGO_GUC_F_*, the unit in
 * bits 8-15), the name, the description (each u32 length and bytes), and
 * by kind: int: i32 default, min, max; real: f64 default, min, max; bool:
 * u8 default; string: the default (u32 length, bytes); enum: i32 default
 * index, u32 option count, the options (u32 length, bytes). loader_guc.c
 * checks every length and value.
 */
enum
{
	PGGO_GUC_INT = 1,
	PGGO_GUC_BOOL = 2,
	PGGO_GUC_STRING = 3,
	PGGO_GUC_ENUM = 4,
	PGGO_GUC_REAL = 5
};

/* Setting flags (mapped to PostgreSQL's GUC_* by loader_guc.c). */
enum
{
	PGGO_GUC_F_NO_SHOW_ALL = 1,
	PGGO_GUC_F_SUPERUSER_ONLY = 2,
	PGGO_GUC_F_NOT_IN_SAMPLE = 4,
	PGGO_GUC_F_CHECK = 8		/* Go has a check hook for it */
};
#define PGGO_GUC_UNIT_SHIFT 8
/* Units of int and real settings, (flags >> PGGO_GUC_UNIT_SHIFT) & 0xff. */
enum
{
	PGGO_GUC_UNIT_NONE = 0,
	PGGO_GUC_UNIT_BYTE = 1,
	PGGO_GUC_UNIT_KB = 2,
	PGGO_GUC_UNIT_MB = 3,
	PGGO_GUC_UNIT_BLOCKS = 4,
	PGGO_GUC_UNIT_MS = 5,
	PGGO_GUC_UNIT_S = 6,
	PGGO_GUC_UNIT_MIN = 7
};

enum
{
	PGGO_GUC_POSTMASTER = 1,
	PGGO_GUC_SIGHUP = 2,
	PGGO_GUC_SUPERUSER = 3,
	PGGO_GUC_USER = 4
};

#define PGGO_MAX_SETTINGS 256
#define PGGO_SETTING_NAMELEN 200
#define PGGO_MAX_ENUM_OPTIONS 64

typedef int (*pggo_go_settings_fn) (char **buf, size_t *len);

/*
 * Check hooks (guc.Check). pggo_go_check_start runs in the init helper once
 * the helper has defined the settings in its own copy of the postmaster:
 * every hook sees its setting's start value; non-zero: *errmsg (malloc'd)
 * says which setting, value and why, and the server refuses to start.
 * pggo_go_check_setting runs a hook from a C check hook, in a process where
 * Go is loaded: i holds int, bool and the unit-less number, f a real, s a
 * string or enum value. It returns 0 (accepted), 1 (rejected, *msg
 * malloc'd) or 2 (no hook for that name in this process).
 */
typedef int (*pggo_go_check_start_fn) (const pggo_api *api, char **errmsg);
typedef int (*pggo_go_check_setting_fn) (const char *name, int64_t i, double f,
										 const char *s, char **msg);
typedef int (*pggo_go_run_worker_fn) (const pggo_api *api, const char *function,
									  uintptr_t arg, pggo_error *exit);

/*
 * pggo_go_call_function runs a Go function registered with fmgr.Register for
 * a SQL call: args is one row in the result wire format, *ret one value in the
 * parameter wire format (malloc'd). Non-zero: *exit describes the ERROR.
 */
typedef int (*pggo_go_call_function_fn) (const pggo_api *api, const char *function,
										 const char *args, size_t argslen,
										 pggo_buf *ret, pggo_error *exit);

#endif							/* PGGO_ABI_H */

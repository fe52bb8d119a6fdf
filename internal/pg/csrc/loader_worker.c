/*-------------------------------------------------------------------------
 *
 * loader_worker.c
 *		A Go worker's life: the entry point the trampolines call, the calls
 *		a MainFunc makes outside SPI (its registration, connecting, logging,
 *		activity, settings), and the table of functions handed to Go.
 *
 * The worker's MainFunc runs on the process's main thread, inside the
 * frame pushed here (see pggo_loader.h). It returns to C with an error
 * value rather than raising, and the error is raised only once no Go frame
 * is left on the stack: the bgworker's own handler logs it and exits with
 * code 1 (restart after the restart time, never crash recovery).
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary for a bgworker */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"

/* These are used by the worker's calls */
#include <dlfcn.h>
#include "pgstat.h"
#include "utils/backend_status.h"
#include "utils/guc.h"

#include "pggo_loader.h"

void
pggo_loader_run_worker(const char *function, Datum arg)
{
	char		err[1024];
	pggo_go_run_worker_fn run;
	pggo_error	exit_err;

	pggo_set_main_thread();
	pggo_locate_libraries();

	if (pggo_open_go_library(err, sizeof(err)) == NULL)
		ereport(ERROR, (errmsg("pggo: %s", err)));
	run = (pggo_go_run_worker_fn) dlsym(pggo_go_handle, "pggo_go_run_worker");
	if (run == NULL)
		ereport(ERROR, (errmsg("pggo: %s does not export pggo_go_run_worker", pggo_go_library_path)));

	pggo_install_worker_signals();
	pggo_push_frame(PGGO_FRAME_WORKER);

	memset(&exit_err, 0, sizeof(exit_err));
	if (run(pggo_make_api(), function, (uintptr_t) arg, &exit_err) != 0)
		pggo_raise_go_error(&exit_err);
}

static void
api_free(void *p)
{
	free(p);
}

static int
api_on_main_thread(void)
{
	return pggo_on_main_thread();
}

static int
api_worker_info(pggo_spec *out)
{
	BackgroundWorker *w = MyBgworkerEntry;

	memset(out, 0, sizeof(*out));
	if (w == NULL)
		return -1;
	out->name = w->bgw_name;
	out->type = w->bgw_type;
	out->library = w->bgw_library_name;
	out->function = w->bgw_function_name;
	out->extra = w->bgw_extra;
	out->flags = ((w->bgw_flags & BGWORKER_SHMEM_ACCESS) ? PGGO_SHMEM_ACCESS : 0) |
		((w->bgw_flags & BGWORKER_BACKEND_DATABASE_CONNECTION) ? PGGO_DATABASE_CONNECTION : 0);
#ifdef BGWORKER_INTERRUPTIBLE
	if (w->bgw_flags & BGWORKER_INTERRUPTIBLE)
		out->flags |= PGGO_INTERRUPTIBLE;
#endif
	out->start_time = w->bgw_start_time;
	out->restart_time = w->bgw_restart_time;
	out->arg = (uintptr_t) w->bgw_main_arg;
	out->notify_pid = w->bgw_notify_pid;
	return 0;
}

/* Is name a trampoline of this library, not shadowed by another object? */
static int
api_has_function(const char *name, char **why)
{
	void	   *self = dlopen(pggo_loader_path, RTLD_NOW | RTLD_NOLOAD);
	void	   *mine = self ? dlsym(self, name) : NULL;
	void	   *global = dlsym(RTLD_DEFAULT, name);
	char		buf[MAXPGPATH + 200];

	*why = NULL;
	if (mine == NULL)
	{
		snprintf(buf, sizeof(buf), "\"%s\" does not export it: `pggo build` exports the names passed as string literals to bgworker.RegisterFunction in the main package", pggo_loader_path);
		*why = strdup(buf);
		return 0;
	}
	if (global != NULL && global != mine)
	{
		Dl_info		info;

		snprintf(buf, sizeof(buf), "the name is already a symbol of \"%s\"; choose another function name",
				 dladdr(global, &info) && info.dli_fname ? info.dli_fname : "another library");
		*why = strdup(buf);
		return 0;
	}
	return 1;
}

typedef struct ConnectArgs
{
	const char *db;
	const char *user;
	Oid			dboid;
	Oid			useroid;
	int			how;			/* PGGO_CONNECT_* */
} ConnectArgs;

static void
op_connect(void *p)
{
	ConnectArgs *a = p;
	uint32		flags = 0;

	if (a->how & PGGO_CONNECT_BYPASS_ALLOWCONN)
		flags |= BGWORKER_BYPASS_ALLOWCONN;
	if (a->how & PGGO_CONNECT_BYPASS_ROLELOGINCHECK)
	{
#ifdef BGWORKER_BYPASS_ROLELOGINCHECK
		flags |= BGWORKER_BYPASS_ROLELOGINCHECK;
#else
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("bgworker.BypassRoleLoginCheck needs PostgreSQL 17 or later; this server is %s", PG_VERSION)));
#endif
	}
	if (a->how & PGGO_CONNECT_BY_OID)
		BackgroundWorkerInitializeConnectionByOid(a->dboid, a->useroid, flags);
	else
		BackgroundWorkerInitializeConnection(a->db, a->user, flags);
	/* Connecting may install handlers (timeouts): keep them on the alt stack. */
	pggo_use_signal_stack();
}

static int
api_connect(const char *db, const char *user, unsigned dboid, unsigned useroid,
			int how, pggo_error *err)
{
	ConnectArgs a = {.db = db,.user = user,.dboid = dboid,.useroid = useroid,.how = how};
	PggoFrame  *f = pggo_frame();

	if (f == NULL || f->kind != PGGO_FRAME_WORKER)
	{
		pggo_set_error(err, PGGO_EUSAGE, "0A000", "only a background worker's MainFunc can connect to a database");
		return -1;
	}
	return pggo_guard(op_connect, &a, err);
}

typedef struct TextArgs
{
	int			level;
	const char *text;
	size_t		len;
} TextArgs;

static void
op_report_activity(void *p)
{
	TextArgs   *a = p;

	if (a->level)
	{
		char	   *q = pnstrdup(a->text, a->len);

		pgstat_report_activity(STATE_RUNNING, q);
		pfree(q);
	}
	else
		pgstat_report_activity(STATE_IDLE, NULL);
}

static int
api_report_activity(int running, const char *query, size_t len, pggo_error *err)
{
	TextArgs	a = {running, query, len};

	return pggo_guard(op_report_activity, &a, err);
}

static void
op_log(void *p)
{
	TextArgs   *a = p;
	int			level = a->level == PGGO_LOG_DEBUG ? DEBUG1 :
		a->level == PGGO_LOG_INFO ? INFO :
		a->level == PGGO_LOG_NOTICE ? NOTICE :
		a->level == PGGO_LOG_WARNING ? WARNING : LOG;

	ereport(level, (errmsg_internal("%.*s", (int) a->len, a->text)));
}

static int
api_log(int level, const char *msg, size_t len, pggo_error *err)
{
	TextArgs	a = {level, msg, len};

	return pggo_guard(op_log, &a, err);
}

typedef struct SettingArgs
{
	const char *name;
	char	   *value;
	bool		found;
} SettingArgs;

static void
op_get_setting(void *p)
{
	SettingArgs *a = p;
	const char *v = GetConfigOption(a->name, true, false);

	a->found = v != NULL;
	a->value = v ? strdup(v) : NULL;
}

/* A configuration setting (GUC), including custom "prefix.name" ones. */
static int
api_get_setting(const char *name, char **value, pggo_error *err)
{
	SettingArgs a = {name, NULL, false};

	*value = NULL;
	if (pggo_guard(op_get_setting, &a, err) != 0)
		return -1;
	*value = a.value;
	return a.found ? 1 : 0;
}

static int
api_my_proc_pid(void)
{
	return MyProcPid;
}

static unsigned
api_my_database_id(void)
{
	return MyDatabaseId;
}

static unsigned
api_my_user_id(void)
{
	return GetUserId();
}


/* ---------------------------------------------------------------------
 * The table handed to Go
 * ---------------------------------------------------------------------
 */
const pggo_api *
pggo_make_api(void)
{
	static pggo_api api;

	api.abi_version = PGGO_ABI_VERSION;
	api.loader_path = pggo_loader_path;
	api.pg_version_num = PG_VERSION_NUM;
	api.bgw_maxlen = BGW_MAXLEN;
	api.bgw_extralen = BGW_EXTRALEN;
	api.library_maxlen = sizeof(((BackgroundWorker *) NULL)->bgw_library_name);
	api.free = api_free;
	api.on_main_thread = api_on_main_thread;
	api.has_function = api_has_function;
	api.worker_info = api_worker_info;
	api.attach_signals = api_attach_signals;
	api.take_sighup = api_take_sighup;
	api.take_sigterm = api_take_sigterm;
	api.sigterm_seen = api_sigterm_seen;
	api.set_my_latch = api_set_my_latch;
	api.wait_latch = api_wait_latch;
	api.postmaster_alive = api_postmaster_alive;
	api.proc_exit = api_proc_exit;
	api.connect = api_connect;
	api.tx_begin = api_tx_begin;
	api.tx_commit = api_tx_commit;
	api.tx_rollback = api_tx_rollback;
	api.spi_exec = api_spi_exec;
	api.report_activity = api_report_activity;
	api.log = api_log;
	api.get_setting = api_get_setting;
	api.my_proc_pid = api_my_proc_pid;
	api.my_database_id = api_my_database_id;
	api.register_dynamic = api_register_dynamic;
	api.bgw_handle = api_bgw_handle;
	api.spi_prepare = api_spi_prepare;
	api.spi_free_plan = api_spi_free_plan;
	api.spi_exec_plan = api_spi_exec_plan;
	api.spi_query = api_spi_query;
	api.spi_fetch = api_spi_fetch;
	api.spi_close_cursor = api_spi_close_cursor;
	api.subxact = api_subxact;
	api.exit_process = api_exit_process;
	api.param_roundtrip = api_param_roundtrip;
	api.notify_work = api_notify_work;
	api.set_notify_fd = api_set_notify_fd;
	api.postmaster_death_fd = api_postmaster_death_fd;
	api.get_real_setting = api_get_real_setting;

	/* Shared memory and message queues. */
	api.shmem_region = api_shmem_region;
	api.shmem_lock = api_shmem_lock;
	api.mq_create = api_mq_create;
	api.mq_attach = api_mq_attach;
	api.mq_set_worker = api_mq_set_worker;
	api.mq_send = api_mq_send;
	api.mq_receive = api_mq_receive;
	api.mq_detach = api_mq_detach;
	api.my_user_id = api_my_user_id;

	/* Performance (issue 10): keep in one block. */
	api.spi_prepare_cached = api_spi_prepare_cached;
	api.spi_query_row = api_spi_query_row;
	api.spi_exec_batch = api_spi_exec_batch;
	api.set_wait_event = api_set_wait_event;
	return &api;
}

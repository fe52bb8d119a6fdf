/*-------------------------------------------------------------------------
 *
 * loader_init.c
 *		_PG_init, and static registration without Go in the postmaster.
 *
 * The postmaster forks every backend. Go's runtime does not survive a fork
 * once it has started (its threads are not copied), so the postmaster must
 * never load Go. _PG_init therefore forks a short-lived helper that loads
 * the Go library, runs the extension's OnInit hooks and writes the workers
 * to register back over a pipe; the postmaster registers them and stays
 * single-threaded. A helper that fails, dies or hangs makes the server
 * refuse to start, with the worker and field named.
 *
 * This file also finds the two libraries (the loader, and the Go library
 * next to it) and opens the Go library for the other files.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary for a bgworker */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"

/* These are needed by the init helper */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lib/stringinfo.h"
#include "postmaster/bgworker_internals.h"
#include "utils/guc.h"

#include "pggo_loader.h"

PG_MODULE_MAGIC;

/* How long the postmaster waits for the init helper before giving up. */
#define PGGO_INIT_TIMEOUT_MS 60000

char		pggo_loader_path[MAXPGPATH];
char		pggo_go_library_path[MAXPGPATH];
void	   *pggo_go_handle;

void		_PG_init(void);

/* The loader's own path (dladdr), and the Go library's: the same directory. */
void
pggo_locate_libraries(void)
{
	Dl_info		info;
	char	   *slash;

	if (pggo_loader_path[0] != '\0')
		return;
	/*
	 * A hidden symbol: _PG_init is exported by every pggo loader, and with a
	 * preloaded one in the process it would resolve to that one's.
	 */
	if (dladdr((void *) &pggo_locate_libraries, &info) == 0 || info.dli_fname == NULL)
		ereport(FATAL, (errmsg("pggo: cannot find the path of the loaded library")));
	if (info.dli_fname[0] == '/')
		strlcpy(pggo_loader_path, info.dli_fname, sizeof(pggo_loader_path));
	else if (realpath(info.dli_fname, pggo_loader_path) == NULL)
		ereport(FATAL, (errmsg("pggo: cannot resolve library path \"%s\": %m", info.dli_fname)));

	strlcpy(pggo_go_library_path, pggo_loader_path, sizeof(pggo_go_library_path));
	slash = strrchr(pggo_go_library_path, '/');
	slash[1] = '\0';
	strlcat(pggo_go_library_path, pggo_go_library_name, sizeof(pggo_go_library_path));
}

/*
 * Open the Go library with every signal blocked. Go's runtime starts its
 * threads inside dlopen and they inherit this mask, so process-directed
 * signals (SIGTERM, SIGHUP, SIGUSR1, and SIGURG which PostgreSQL's latches
 * read through a signalfd) keep going to the main thread only.
 */
void *
pggo_open_go_library(char *errbuf, size_t errlen)
{
	sigset_t	all,
				saved;
	void	   *h;

	if (pggo_go_handle != NULL)
		return pggo_go_handle;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	h = dlopen(pggo_go_library_path, RTLD_NOW | RTLD_LOCAL);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (h == NULL)
		snprintf(errbuf, errlen, "could not load the Go library \"%s\": %s",
				 pggo_go_library_path, dlerror());
	pggo_go_handle = h;
	return h;
}

/*
 * Load Go into this process (a backend or a worker, never the postmaster):
 * the main thread recorded, the library opened with every signal blocked,
 * PostgreSQL's handlers moved to an alternate stack (SA_ONSTACK, as Go
 * requires of handlers it did not install). Idempotent.
 */
bool
pggo_load_go(char *errbuf, size_t errlen)
{
	bool		fresh = pggo_go_handle == NULL;

	if (!IsUnderPostmaster)
	{
		snprintf(errbuf, errlen, "Go is never loaded in the postmaster");
		return false;
	}
	pggo_set_main_thread();
	pggo_locate_libraries();
	if (pggo_open_go_library(errbuf, errlen) == NULL)
		return false;
	if (fresh)
		pggo_use_signal_stack();
	return true;
}

/*
 * A BackgroundWorker from a spec. Go checked every length against the
 * limits in pggo_api (and refused what does not fit), so nothing is
 * truncated here.
 */
void
pggo_fill_bgw(BackgroundWorker *w, const pggo_spec *s)
{
	memset(w, 0, sizeof(*w));
	strlcpy(w->bgw_name, s->name, sizeof(w->bgw_name));
	strlcpy(w->bgw_type, s->type, sizeof(w->bgw_type));
	strlcpy(w->bgw_library_name, s->library, sizeof(w->bgw_library_name));
	strlcpy(w->bgw_function_name, s->function, sizeof(w->bgw_function_name));
	strlcpy(w->bgw_extra, s->extra, sizeof(w->bgw_extra));
	w->bgw_flags = ((s->flags & PGGO_SHMEM_ACCESS) ? BGWORKER_SHMEM_ACCESS : 0) |
		((s->flags & PGGO_DATABASE_CONNECTION) ? BGWORKER_BACKEND_DATABASE_CONNECTION : 0);
	if (s->flags & PGGO_INTERRUPTIBLE)
	{
#ifdef BGWORKER_INTERRUPTIBLE
		w->bgw_flags |= BGWORKER_INTERRUPTIBLE;
#else
		/* Go refuses this first (Builder.validate); never register without it. */
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("background worker \"%s\": bgworker.EnableInterruptible needs PostgreSQL 19 or later; this server is %s",
						s->name, PG_VERSION)));
#endif
	}
	w->bgw_start_time = s->start_time == PGGO_START_CONSISTENT ? BgWorkerStart_ConsistentState :
		s->start_time == PGGO_START_RECOVERY_FINISHED ? BgWorkerStart_RecoveryFinished :
		BgWorkerStart_PostmasterStart;
	w->bgw_restart_time = s->restart_time < 0 ? BGW_NEVER_RESTART : s->restart_time;
	w->bgw_main_arg = (Datum) s->arg;
	w->bgw_notify_pid = s->notify_pid;
}

/*
 * In the helper: define the settings in this copy of the postmaster (so
 * PostgreSQL parses postgresql.conf's values, units and bounds as the
 * postmaster will) and hand each start value to its Go check hook. A
 * rejection, or any error defining them, is the reply's error. Warnings
 * (a value out of bounds) are left to the postmaster, which repeats them.
 */
static bool
helper_check_settings(const char *settings, size_t len, char *err, size_t errlen)
{
	pggo_go_check_start_fn check = (pggo_go_check_start_fn) dlsym(pggo_go_handle, "pggo_go_check_start");
	MemoryContext cxt = CurrentMemoryContext;
	char	   *errmsg = NULL;
	bool		ok = true;

	PG_TRY();
	{
		SetConfigOption("log_min_messages", "error", PGC_POSTMASTER, PGC_S_OVERRIDE);
		pggo_guc_define_settings(settings, len, PGGO_DEFINE_HELPER);
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
		snprintf(err, errlen, "%s", ed->message);
		return false;
	}
	PG_END_TRY();
	if (check != NULL && check(pggo_make_api(), &errmsg) != 0)
	{
		snprintf(err, errlen, "%s", errmsg ? errmsg : "a check hook failed");
		ok = false;
	}
	return ok;
}

/*
 * Runs in the forked helper: load Go, run OnInit, write the result to fd.
 * The message is "E<text>" for an error, or "W", a u32 count and that many
 * BackgroundWorker structs, followed by the shared memory regions Go
 * declared (see pggo_shmem_read_regions) and the settings it declared (see
 * pggo_guc_define_settings). The helper is a copy of the postmaster, so it must leave with
 * _exit: a normal exit would run the postmaster's exit hooks (which remove
 * postmaster.pid) in the wrong process.
 */
static void
init_helper(int fd)
{
	char		err[1024];
	pggo_go_collect_fn collect;
	pggo_spec  *specs = NULL;
	int			nspecs = 0;
	char	   *errmsg = NULL;
	StringInfoData out;
	sigset_t	all;

	/* The postmaster's signal handlers must not run in this copy of it. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* OnInit may read settings through the api, from this thread only. */
	pggo_set_main_thread();
	pggo_push_frame(PGGO_FRAME_INIT);

	initStringInfo(&out);
	if (pggo_open_go_library(err, sizeof(err)) == NULL)
		appendStringInfo(&out, "E%s", err);
	else if ((collect = (pggo_go_collect_fn) dlsym(pggo_go_handle, "pggo_go_collect")) == NULL)
		appendStringInfo(&out, "E%s does not export pggo_go_collect; was it built by pggo build?",
						 pggo_go_library_path);
	else if (collect(pggo_make_api(), &specs, &nspecs, &errmsg) != 0)
		appendStringInfo(&out, "E%s", errmsg ? errmsg : "OnInit failed");
	else
	{
		pggo_go_regions_fn get_regions = (pggo_go_regions_fn) dlsym(pggo_go_handle, "pggo_go_regions");
		pggo_region *regions = NULL;
		int			nregions = 0;

		appendStringInfoChar(&out, 'W');
		pggo_put_u32(&out, nspecs);
		for (int i = 0; i < nspecs; i++)
		{
			BackgroundWorker w;

			pggo_fill_bgw(&w, &specs[i]);
			appendBinaryStringInfo(&out, (char *) &w, sizeof(w));
		}
		if (get_regions != NULL && get_regions(&regions, &nregions) != 0)
			nregions = 0;
		pggo_put_u32(&out, nregions);
		for (int i = 0; i < nregions; i++)
		{
			uint32		namelen = strlen(regions[i].name);

			pggo_put_u32(&out, namelen);
			appendBinaryStringInfo(&out, regions[i].name, namelen);
			appendBinaryStringInfo(&out, (char *) &regions[i].size, sizeof(uint64));
			appendBinaryStringInfo(&out, (char *) &regions[i].align, sizeof(uint32));
		}
		/* The declared settings (loader_guc.c), already encoded by Go. */
		{
			pggo_go_settings_fn get_settings = (pggo_go_settings_fn) dlsym(pggo_go_handle, "pggo_go_settings");
			char	   *settings = NULL;
			size_t		settingslen = 0;

			if (get_settings != NULL && get_settings(&settings, &settingslen) == 0 && settings != NULL)
			{
				appendBinaryStringInfo(&out, settings, settingslen);
				if (!helper_check_settings(settings, settingslen, err, sizeof(err)))
				{
					resetStringInfo(&out);
					appendStringInfo(&out, "E%s", err);
				}
			}
		}
	}

	for (int off = 0; off < out.len;)
	{
		ssize_t		n = write(fd, out.data + off, out.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(3);
		off += n;
	}
	_exit(0);
}

/* Read everything the helper writes, within the deadline. */
static bool
read_helper(int fd, StringInfo buf)
{
	struct timespec start,
				now;
	char		chunk[8192];

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;)
	{
		struct pollfd pfd = {.fd = fd,.events = POLLIN};
		long		elapsed;
		int			rc;
		ssize_t		n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (elapsed >= PGGO_INIT_TIMEOUT_MS)
			return false;
		rc = poll(&pfd, 1, (int) (PGGO_INIT_TIMEOUT_MS - elapsed));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return false;
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;		/* EOF: the helper is done */
		appendBinaryStringInfo(buf, chunk, n);
	}
}

static int
count_registered_workers(void)
{
	int			n = 0;

	/* PostgreSQL 18 made BackgroundWorkerList doubly linked. */
#if PG_VERSION_NUM >= 180000
	dlist_iter	iter;

	dlist_foreach(iter, &BackgroundWorkerList)
		n++;
#else
	slist_iter	iter;

	slist_foreach(iter, &BackgroundWorkerList)
		n++;
#endif
	return n;
}

static void
register_static_workers(void)
{
	int			fds[2];
	pid_t		child;
	int			status = 0;
	bool		complete;
	StringInfoData msg;
	int			nworkers,
				before;

	if (pipe(fds) != 0)
		ereport(FATAL, (errmsg("pggo: could not create a pipe for the init helper: %m")));
	fflush(NULL);
	child = fork();
	if (child < 0)
		ereport(FATAL, (errmsg("pggo: could not fork the init helper: %m")));
	if (child == 0)
	{
		close(fds[0]);
		init_helper(fds[1]);
		_exit(4);				/* not reached */
	}
	close(fds[1]);

	initStringInfo(&msg);
	complete = read_helper(fds[0], &msg);
	close(fds[0]);
	if (!complete)
		kill(child, SIGKILL);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;

	if (!complete)
		ereport(FATAL,
				(errmsg("pggo: the init helper of \"%s\" did not finish within %d s",
						pggo_loader_path, PGGO_INIT_TIMEOUT_MS / 1000),
				 errhint("An OnInit hook or a package init function of the extension blocks.")));
	if (WIFSIGNALED(status))
		ereport(FATAL,
				(errmsg("pggo: the init helper of \"%s\" was terminated by signal %d",
						pggo_loader_path, WTERMSIG(status)),
				 errhint("Signal 6 usually means an unrecovered Go panic in a package init function or a goroutine; its trace is above in the log.")));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		ereport(FATAL,
				(errmsg("pggo: the init helper of \"%s\" exited with code %d",
						pggo_loader_path, WIFEXITED(status) ? WEXITSTATUS(status) : -1),
				 errhint("Go code called os.Exit or log.Fatal during OnInit or a package init function, or hit a Go fatal error; see the log above.")));
	if (msg.len < 1)
		ereport(FATAL, (errmsg("pggo: the init helper of \"%s\" sent nothing", pggo_loader_path)));
	if (msg.data[0] == 'E')
		ereport(FATAL,
				(errmsg("pggo: %s: %s", pggo_loader_path, msg.data + 1),
				 errhint("Fix the extension's OnInit hook or worker definition; the server did not start.")));
	if (msg.data[0] != 'W' || msg.len < 5)
		ereport(FATAL, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply", pggo_loader_path)));
	memcpy(&nworkers, msg.data + 1, sizeof(uint32));
	if (nworkers < 0 || nworkers > (msg.len - 5) / (int) sizeof(BackgroundWorker))
		ereport(FATAL, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply", pggo_loader_path)));
	/*
	 * The regions follow the workers (reserved in shmem_request_hook), the
	 * settings follow the regions (defined now, before any worker starts).
	 */
	{
		const char *rest = msg.data + 5 + nworkers * sizeof(BackgroundWorker);
		size_t		restlen = msg.len - 5 - nworkers * sizeof(BackgroundWorker);
		size_t		used = pggo_shmem_read_regions(rest, restlen);

		pggo_guc_define_settings(rest + used, restlen - used, PGGO_DEFINE_POSTMASTER);
	}
	pggo_shmem_install_hooks();

	/*
	 * RegisterBackgroundWorker only logs when a worker does not fit, which
	 * would start the server half-configured; count and refuse instead.
	 */
	before = count_registered_workers();
	for (int i = 0; i < nworkers; i++)
	{
		BackgroundWorker w;

		memcpy(&w, msg.data + 5 + i * sizeof(BackgroundWorker), sizeof(w));
		RegisterBackgroundWorker(&w);
	}
	if (count_registered_workers() - before != nworkers)
		ereport(FATAL,
				(errmsg("pggo: only %d of the %d background workers of \"%s\" could be registered",
						count_registered_workers() - before, nworkers, pggo_loader_path),
				 errhint("Raise max_worker_processes (now %d), or see the messages above.",
						 max_worker_processes)));
	pfree(msg.data);
}

/*
 * Loaded after start, not preloaded: LOAD, a function call or CREATE
 * EXTENSION in a backend, a dynamic worker's start. Go is loaded in this
 * process (a worker or a function call loads it right after anyway) and
 * the settings it declares are defined here, as upstream's worker_spi
 * defines its settings in every _PG_init.
 */
static void
define_settings_late(void)
{
	char		err[1024];
	pggo_go_settings_fn get_settings;
	char	   *settings = NULL;
	size_t		len = 0;

	if (!pggo_load_go(err, sizeof(err)))
		ereport(ERROR, (errmsg("pggo: %s", err)));
	get_settings = (pggo_go_settings_fn) dlsym(pggo_go_handle, "pggo_go_settings");
	if (get_settings == NULL || get_settings(&settings, &len) != 0 || settings == NULL)
		return;
	pggo_guc_define_settings(settings, len, PGGO_DEFINE_LATE);
	free(settings);
}

void
_PG_init(void)
{
	pggo_locate_libraries();

	/*
	 * Static workers can only be registered while the postmaster loads
	 * shared_preload_libraries. A process that loads the library later
	 * only defines the declared settings; a process forked from a
	 * postmaster that preloaded it never gets here (it has them all).
	 */
	if (!process_shared_preload_libraries_in_progress)
	{
		if (IsUnderPostmaster)
			define_settings_late();
		return;
	}
	if (IsUnderPostmaster)
		return;
	register_static_workers();
}

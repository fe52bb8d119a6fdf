/*-------------------------------------------------------------------------
 *
 * pggo_loader.h
 *		What the loader's files share. The loader is the plain-C half of a
 *		pggo extension and the only code of pggo that calls PostgreSQL; it is
 *		split by PostgreSQL concept, one file each:
 *
 *	loader_init.c		_PG_init, the init helper, static registration
 *	loader_signals.c	signal handlers, latches and wake-ups
 *	loader_guard.c		call frames, the error guard, transaction state, exits
 *	loader_spi.c		SPI: parameters in, results out, plans and cursors
 *	loader_dynamic.c	dynamic background workers
 *	loader_fmgr.c		SQL-callable Go functions
 *	loader_worker.c		the worker's entry point and the table handed to Go
 *	loader_shmem.c		named shared memory regions and their LWLocks
 *	loader_mq.c			message queues (shm_mq) over dynamic shared memory
 *	loader_srf.c		set-returning Go SQL functions (materialize mode)
 *	loader_guc.c		settings declared in Go, defined in the postmaster (or
 *						where the library is loaded later); their check hooks
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGGO_LOADER_H
#define PGGO_LOADER_H

#include "postgres.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "postmaster/bgworker.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pggo_abi.h"

/*
 * Shared between the loader's files and the trampolines `pggo build`
 * generates. Hidden, so that two pggo extensions preloaded together never
 * bind to each other's.
 */
#define PGGO_HIDDEN __attribute__((visibility("hidden")))

/* loader_init.c */
extern PGGO_HIDDEN const char pggo_go_library_name[];	/* from the trampolines */
extern PGGO_HIDDEN char pggo_loader_path[MAXPGPATH];
extern PGGO_HIDDEN char pggo_go_library_path[MAXPGPATH];
extern PGGO_HIDDEN void *pggo_go_handle;
extern PGGO_HIDDEN void pggo_locate_libraries(void);
extern PGGO_HIDDEN void *pggo_open_go_library(char *errbuf, size_t errlen);
extern PGGO_HIDDEN bool pggo_load_go(char *errbuf, size_t errlen);
extern PGGO_HIDDEN void pggo_fill_bgw(BackgroundWorker *w, const pggo_spec *s);

/* loader_signals.c */
extern PGGO_HIDDEN void pggo_install_worker_signals(void);
extern PGGO_HIDDEN void pggo_use_signal_stack(void);
extern PGGO_HIDDEN void api_attach_signals(int flags);
extern PGGO_HIDDEN int api_take_sighup(void);
extern PGGO_HIDDEN int api_take_sigterm(void);
extern PGGO_HIDDEN int api_sigterm_seen(void);
extern PGGO_HIDDEN void api_set_my_latch(void);
extern PGGO_HIDDEN void api_notify_work(void);
extern PGGO_HIDDEN void api_set_notify_fd(int fd);
extern PGGO_HIDDEN int api_postmaster_death_fd(void);
extern PGGO_HIDDEN int api_set_wait_event(const char *name, pggo_error *err);
extern PGGO_HIDDEN int api_wait_latch(long timeout_ms, int *events, pggo_error *err);
extern PGGO_HIDDEN int api_postmaster_alive(pggo_error *err);
extern PGGO_HIDDEN bool pggo_stop_requested(void);

/*
 * loader_guard.c: call frames.
 *
 * Each time C hands control to Go a frame is pushed: the worker's MainFunc,
 * or one call of a Go SQL function, which may run inside a statement the
 * worker's own Go code started (the executor calls the function). Every
 * pggo_api entry acts on the innermost frame, so re-entrancy is explicit:
 * transactions and savepoints belong to the worker frame; SPI works in every
 * frame, with its own memory (a function frame connects SPI on first use,
 * inside its caller's transaction and snapshot); a function frame that
 * catches a PostgreSQL error keeps it and re-raises it when Go returns, so
 * Go can never swallow an ERROR (a query cancel included) that PostgreSQL
 * has not yet cleaned up after.
 */
typedef enum PggoFrameKind
{
	PGGO_FRAME_INIT = 1,		/* OnInit hooks in the init helper */
	PGGO_FRAME_WORKER,			/* a background worker's MainFunc */
	PGGO_FRAME_FUNCTION			/* one call of a Go SQL function */
} PggoFrameKind;

typedef struct PggoFrame
{
	PggoFrameKind kind;
	MemoryContext entry_cxt;	/* current when the frame was entered */
	ErrorData  *pending;		/* function frames: the error to re-raise */
	/* SPI state of this frame (loader_spi.c): never shared with another. */
	MemoryContext spi_cxt;		/* parameters and results of one call */
	StringInfoData result;		/* the packed result handed to Go */
	int			spi_depth;		/* SPI calls of this frame in progress */
	bool		spi_connected;	/* function frames: SPI_connect done */
	bool		read_only;		/* function frames: a STABLE/IMMUTABLE function */
} PggoFrame;

#define PGGO_MAX_FRAMES 16

extern PGGO_HIDDEN void pggo_set_main_thread(void);
extern PGGO_HIDDEN bool pggo_on_main_thread(void);
extern PGGO_HIDDEN PggoFrame *pggo_frame(void);
extern PGGO_HIDDEN PggoFrame *pggo_push_frame(PggoFrameKind kind);
extern PGGO_HIDDEN void pggo_pop_frame(PggoFrame *f);
extern PGGO_HIDDEN void pggo_spi_frame_end(PggoFrame *f);
extern PGGO_HIDDEN int pggo_guard(void (*fn) (void *), void *arg, pggo_error *err);
extern PGGO_HIDDEN void pggo_set_error(pggo_error *err, int code, const char *sqlstate,
									   const char *message);
extern PGGO_HIDDEN int pggo_wrong_thread(pggo_error *err);
extern PGGO_HIDDEN bool pggo_spi_usable(pggo_error *err);
extern PGGO_HIDDEN bool pggo_tx_active(void);
extern PGGO_HIDDEN void pggo_raise_go_error(pggo_error *e);
extern PGGO_HIDDEN char *pggo_xstrdup(const char *s);
extern PGGO_HIDDEN void pggo_free_error(pggo_error *e);
extern PGGO_HIDDEN int api_tx_begin(pggo_error *err);
extern PGGO_HIDDEN int api_tx_commit(pggo_error *err);
extern PGGO_HIDDEN int api_tx_rollback(pggo_error *err);
extern PGGO_HIDDEN int api_subxact(int op, int *level, pggo_error *err);
extern PGGO_HIDDEN void api_proc_exit(int code);
extern PGGO_HIDDEN int api_exit_process(int code, const char *message, const char *detail);

/* loader_spi.c */
extern PGGO_HIDDEN int api_spi_exec(const char *sql, size_t sqllen, const char *params,
									size_t paramslen, int nparams, int64_t maxrows,
									pggo_buf *out, pggo_error *err);
extern PGGO_HIDDEN int api_spi_prepare(const char *sql, size_t sqllen, const unsigned *types,
									   int ntypes, void **plan, unsigned **types_out,
									   int *ntypes_out, pggo_error *err);
extern PGGO_HIDDEN int api_spi_free_plan(void *plan, pggo_error *err);
extern PGGO_HIDDEN int api_spi_exec_plan(void *plan, const char *params, size_t paramslen,
										 int nparams, int64_t maxrows, pggo_buf *out,
										 pggo_error *err);
extern PGGO_HIDDEN int api_spi_query(void *plan, const char *sql, size_t sqllen,
									 const char *params, size_t paramslen, int nparams,
									 long batch, pggo_buf *out, char **portal, pggo_error *err);
extern PGGO_HIDDEN int api_spi_fetch(const char *portal, long batch, pggo_buf *out,
									 pggo_error *err);
extern PGGO_HIDDEN int api_spi_close_cursor(const char *portal, pggo_error *err);
extern PGGO_HIDDEN int api_spi_prepare_cached(const char *sql, size_t sqllen,
											  const unsigned *types, int ntypes, void **plan,
											  unsigned **types_out, int *ntypes_out,
											  pggo_error *err);
extern PGGO_HIDDEN int api_spi_query_row(void *plan, const char *sql, size_t sqllen,
										 const char *params, size_t paramslen, int nparams,
										 pggo_buf *out, pggo_error *err);
extern PGGO_HIDDEN int api_spi_exec_batch(void *plan, const char *params, size_t paramslen,
										  int nparams, int64_t nrows, uint64_t *processed,
										  pggo_error *err);
extern PGGO_HIDDEN int api_param_roundtrip(const char *params, size_t len, unsigned type,
										   char **text, int *isnull, pggo_error *err);

/* The value encodings of internal/wire, shared by SPI and SQL functions. */
typedef struct PggoWireParam
{
	int			kind;
	Oid			oid;
	int64		i;
	int32		offset;			/* PGGO_WIRE_TIME: the zone's offset, seconds */
	double		f;
	const char *b;
	uint32		len;
} PggoWireParam;

extern PGGO_HIDDEN PggoWireParam *pggo_decode_params(const char *p, size_t len, int n);
extern PGGO_HIDDEN Datum pggo_param_datum(PggoWireParam *w, Oid type, int index);
extern PGGO_HIDDEN void pggo_put_u32(StringInfo s, uint32 v);
extern PGGO_HIDDEN void pggo_put_i64(StringInfo s, int64 v);
extern PGGO_HIDDEN void pggo_pack_datum(StringInfo s, Oid type, Datum d, bool isnull,
										FmgrInfo *out, bool *have_out);

/* loader_dynamic.c */
extern PGGO_HIDDEN int api_register_dynamic(const pggo_spec *spec, void **handle,
											pggo_error *err);
extern PGGO_HIDDEN int api_bgw_handle(void *handle, int op, int *pid, int *status,
									  pggo_error *err);

/* loader_worker.c */
extern PGGO_HIDDEN const pggo_api *pggo_make_api(void);
extern PGGO_HIDDEN void pggo_loader_run_worker(const char *function, Datum arg);

/* loader_fmgr.c */
extern PGGO_HIDDEN Datum pggo_loader_call_function(const char *function, FunctionCallInfo fcinfo);

/* loader_shmem.c */
extern PGGO_HIDDEN size_t pggo_shmem_read_regions(const char *p, size_t len);
extern PGGO_HIDDEN void pggo_shmem_install_hooks(void);
extern PGGO_HIDDEN int api_shmem_region(const char *name, uint64_t size, uint32_t align,
										void **data, uint32_t **initialised, int *index,
										pggo_error *err);
extern PGGO_HIDDEN int api_shmem_lock(int index, int mode, pggo_error *err);

/* loader_mq.c */
extern PGGO_HIDDEN int api_mq_create(size_t size, int role, void **mq, uint32_t *handle,
									 pggo_error *err);
extern PGGO_HIDDEN int api_mq_attach(uint32_t handle, int role, void **mq, pggo_error *err);
extern PGGO_HIDDEN int api_mq_set_worker(void *mq, void *bgw_handle, pggo_error *err);
extern PGGO_HIDDEN int api_mq_send(void *mq, const char *data, size_t len, int nowait,
								   pggo_error *err);
extern PGGO_HIDDEN int api_mq_receive(void *mq, char **data, size_t *len, int nowait,
									  pggo_error *err);
extern PGGO_HIDDEN int api_mq_detach(void *mq, pggo_error *err);

/* loader_srf.c */
extern PGGO_HIDDEN bool pggo_is_rows_result(const char *data, size_t len);
extern PGGO_HIDDEN Datum pggo_materialize_rows(FunctionCallInfo fcinfo, const char *data, size_t len);

/* loader_guc.c */
typedef enum PggoDefineMode
{
	PGGO_DEFINE_POSTMASTER,		/* preloaded: in the postmaster's _PG_init */
	PGGO_DEFINE_HELPER,			/* the init helper, to parse start values */
	PGGO_DEFINE_LATE			/* a process that loaded the library later */
} PggoDefineMode;

extern PGGO_HIDDEN void pggo_guc_define_settings(const char *p, size_t len, PggoDefineMode mode);
extern PGGO_HIDDEN int api_get_real_setting(const char *name, double *value);

#endif							/* PGGO_LOADER_H */

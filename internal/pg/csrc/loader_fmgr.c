/*-------------------------------------------------------------------------
 *
 * loader_fmgr.c
 *		SQL-callable Go functions (package fmgr): the trampolines `pggo build`
 *		generates land here, in an ordinary backend or in a worker whose
 *		statement calls the function.
 *
 * Each call is a frame (see pggo_loader.h): the function runs inside its
 * caller's statement, so an error PostgreSQL raises for it is kept and
 * re-raised here once Go has returned, whatever Go returned; Go cannot
 * swallow it (a query cancel included), and the caller's error handling
 * cleans up as for any C function.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

/* These are used by loading Go and converting values */
#include <dlfcn.h>
#include <pthread.h>
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "lib/stringinfo.h"

#include "pggo_loader.h"

static pggo_go_call_function_fn go_call_function;

/*
 * Load Go in this backend on its first call. Same care as in a worker: all
 * signals blocked while the runtime starts, PostgreSQL's handlers on an
 * alternate stack. The postmaster never gets here: it runs no SQL.
 */
static void
prepare_backend_for_go(void)
{
	char		err[1024];

	if (go_call_function != NULL)
		return;
	if (!pggo_load_go(err, sizeof(err)))
		ereport(ERROR, (errmsg("pggo: %s", err)));
	go_call_function = (pggo_go_call_function_fn) dlsym(pggo_go_handle, "pggo_go_call_function");
	if (go_call_function == NULL)
		ereport(ERROR, (errmsg("pggo: %s does not export pggo_go_call_function", pggo_go_library_path)));
}

Datum
pggo_loader_call_function(const char *function, FunctionCallInfo fcinfo)
{
	StringInfoData args;
	pggo_buf	ret;
	pggo_error	exit_err;
	Oid			rettype;
	volatile Datum result = (Datum) 0;
	PggoFrame  *frame;
	ErrorData  *pending;
	MemoryContext cxt;
	bool		read_only;
	int			rc;

	prepare_backend_for_go();
	if (!pggo_on_main_thread())
		elog(ERROR, "pggo: SQL function called from a thread that is not the backend's");
	check_stack_depth();

	/* The arguments travel as one row of the result wire format. */
	initStringInfo(&args);
	pggo_put_u32(&args, fcinfo->nargs);
	for (int i = 0; i < fcinfo->nargs; i++)
	{
		char		name[16];

		snprintf(name, sizeof(name), "$%d", i + 1);
		pggo_put_u32(&args, get_fn_expr_argtype(fcinfo->flinfo, i));
		pggo_put_u32(&args, strlen(name));
		appendBinaryStringInfo(&args, name, strlen(name));
	}
	pggo_put_i64(&args, 1);
	for (int i = 0; i < fcinfo->nargs; i++)
	{
		FmgrInfo	out;
		bool		have_out = false;

		pggo_pack_datum(&args, get_fn_expr_argtype(fcinfo->flinfo, i), fcinfo->args[i].value,
						fcinfo->args[i].isnull, &out, &have_out);
	}

	/* A STABLE or IMMUTABLE function's SPI runs read-only, on one snapshot. */
	read_only = OidIsValid(fcinfo->flinfo->fn_oid) &&
		func_volatile(fcinfo->flinfo->fn_oid) != PROVOLATILE_VOLATILE;
	cxt = CurrentMemoryContext;
	frame = pggo_push_frame(PGGO_FRAME_FUNCTION);
	if (frame == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("pggo: Go SQL functions nest more than %d deep", PGGO_MAX_FRAMES)));
	frame->read_only = read_only;
	memset(&ret, 0, sizeof(ret));
	memset(&exit_err, 0, sizeof(exit_err));
	/* No ereport between push and pop: Go cannot longjmp. */
	rc = go_call_function(pggo_make_api(), function, args.data, args.len, &ret, &exit_err);
	pending = frame->pending;
	pggo_pop_frame(frame);
	/* The popped slot stays intact until the next push, which comes later. */
	if (pending == NULL)
		pggo_spi_frame_end(frame);
	MemoryContextSwitchTo(cxt);
	pfree(args.data);

	if (pending != NULL)
	{
		/* PostgreSQL's error first: it has not been cleaned up after. */
		free(ret.data);
		pggo_free_error(&exit_err);
		ReThrowError(pending);
	}
	if (rc != 0)
	{
		free(ret.data);
		pggo_raise_go_error(&exit_err);
	}

	/* RETURNS SETOF: the rows, materialized (loader_srf.c). */
	if (fcinfo->flinfo->fn_retset || pggo_is_rows_result(ret.data, ret.len))
	{
		PG_TRY();
		{
			if (!fcinfo->flinfo->fn_retset)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("pggo: Go function \"%s\" returned fmgr.Rows but is not declared RETURNS SETOF", function)));
			result = pggo_materialize_rows(fcinfo, ret.data, ret.len);
		}
		PG_FINALLY();
		{
			free(ret.data);
		}
		PG_END_TRY();
		return result;
	}

	/* The result comes back as one parameter: convert it to the return type. */
	rettype = get_fn_expr_rettype(fcinfo->flinfo);
	PG_TRY();
	{
		PggoWireParam *w = pggo_decode_params(ret.data, ret.len, 1);

		if (w->kind == 0)
			fcinfo->isnull = true;
		else if (rettype != VOIDOID)
			result = pggo_param_datum(w, rettype, -1);
	}
	PG_FINALLY();
	{
		free(ret.data);
	}
	PG_END_TRY();
	return result;
}

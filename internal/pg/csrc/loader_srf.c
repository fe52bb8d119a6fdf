/*-------------------------------------------------------------------------
 *
 * loader_srf.c
 *		Set-returning Go SQL functions, the minimum: materialize mode.
 *
 * A Go function declared RETURNS SETOF ... returns all its rows at once
 * (fmgr.Rows); they arrive here as a marker byte, the column and row
 * counts, then every value in the parameter wire format, row after row.
 * Each value is converted to its column's type (as a Go function's single
 * result is) and the rows are put into a tuplestore in the query's memory,
 * which the executor reads. The columns are the caller's: the function's
 * declared result type, or the column definition list of a RETURNS SETOF
 * record function (SELECT * FROM f() AS (a int, b text)).
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

/* These are used by building the result set */
#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "funcapi.h"
#include "nodes/execnodes.h"
#include "utils/tuplestore.h"

#include "pggo_loader.h"

#define PGGO_ROWS_MARKER 0xFF

bool
pggo_is_rows_result(const char *data, size_t len)
{
	return len >= 1 && (unsigned char) data[0] == PGGO_ROWS_MARKER;
}

/* Materialize the rows in data into fcinfo's result set. */
Datum
pggo_materialize_rows(FunctionCallInfo fcinfo, const char *data, size_t len)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext old;
	uint32		ncols;
	uint64		nrows;
	PggoWireParam *w;
	Datum	   *values;
	bool	   *nulls;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pggo: a set-returning Go function must be called where a set is accepted (FROM)")));
	if (!pggo_is_rows_result(data, len) || len < 13)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("pggo: a Go function declared RETURNS SETOF must return fmgr.Rows")));
	memcpy(&ncols, data + 1, 4);
	memcpy(&nrows, data + 5, 8);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
	{
		/* SETOF a scalar type: one column of the function's result type. */
		Oid			rettype = get_fn_expr_rettype(fcinfo->flinfo);

		tupdesc = CreateTemplateTupleDesc(1);
		TupleDescInitEntry(tupdesc, (AttrNumber) 1, "result", rettype, -1, 0);
	}
	if (nrows > 0 && (uint32) tupdesc->natts != ncols)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("pggo: the Go function returned rows of %u columns where the query expects %d",
						ncols, tupdesc->natts),
				 errhint("For RETURNS SETOF record, the column definition list must match the rows.")));
	if (ncols > 0 && nrows > (uint64) Min(INT_MAX, MaxAllocHugeSize / sizeof(PggoWireParam)) / ncols)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("pggo: too many rows")));

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);

	values = palloc(sizeof(Datum) * Max(ncols, 1));
	nulls = palloc(sizeof(bool) * Max(ncols, 1));
	w = nrows * ncols > 0 ? pggo_decode_params(data + 13, len - 13, (int) (nrows * ncols)) : NULL;
	for (uint64 r = 0; r < nrows; r++)
	{
		for (uint32 c = 0; c < ncols; c++)
		{
			PggoWireParam *v = &w[r * ncols + c];
			Form_pg_attribute att = TupleDescAttr(tupdesc, c);

			nulls[c] = v->kind == 0;
			values[c] = nulls[c] ? (Datum) 0 : pggo_param_datum(v, att->atttypid, c);
		}
		old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		tuplestore_putvalues(store, tupdesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}

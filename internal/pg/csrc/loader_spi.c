/*-------------------------------------------------------------------------
 *
 * loader_spi.c
 *		SPI for Go: parameters in, results out, prepared plans, cursors.
 *
 * One call runs one statement. Go's arguments arrive in the parameter
 * format of package internal/wire and become Datums of the types the parser
 * settles on; rows go back in its result format, packed into one buffer Go
 * copies before its next call.
 *
 * Only the worker's own frame runs SPI (pggo_spi_usable): a Go SQL function
 * that a worker's statement calls runs while that statement is half-way
 * through SPI, and the memory below is the statement's. Nothing here is
 * re-entered, and a check says so.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

/* These are used by SPI and the value conversions */
#include <math.h>
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/params.h"
#include "parser/parse_param.h"
#include "parser/parser.h"
#include "utils/plancache.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/timestamp.h"

#include "pggo_loader.h"

/* Value kinds of internal/wire (params.go). */
#define WIRE_NULL 0
#define WIRE_INT64 1
#define WIRE_FLOAT64 2
#define WIRE_TEXT 3
#define WIRE_BINARY 4
#define WIRE_TIME 5				/* i64 µs since 2000-01-01 UTC, i32 zone offset s */

/*
 * A cursor batch stops growing past this many bytes (and at the row count
 * Go asked for): 2000 rows of 600 kB would not fit in memory, or in a
 * palloc'd buffer at all.
 */
#define PGGO_BATCH_BYTES (8 * 1024 * 1024)
/* Rows fetched first, to learn how large this result's rows are. */
#define PGGO_PROBE_ROWS 64

/* Parameter types, filled in by the parser (variable parameters). */
typedef struct VarParams
{
	Oid		   *types;
	int			ntypes;
} VarParams;

static void
varparams_setup(struct ParseState *pstate, void *arg)
{
	VarParams  *vp = arg;

	setup_parse_variable_parameters(pstate, &vp->types, &vp->ntypes);
}



/* ---------------------------------------------------------------------
 * Parameters: Go values into Datums
 * ---------------------------------------------------------------------
 */
static const char *
read_bytes(const char *p, const char *end, void *dst, size_t n)
{
	if (p == NULL || end - p < (ptrdiff_t) n)
		ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
						errmsg("pggo: malformed parameter buffer")));
	memcpy(dst, p, n);
	return p + n;
}

/*
 * n records from *pp onwards (not past end); *pp is left after the last
 * one, so that a batch of argument rows decodes one row at a time.
 */
static PggoWireParam *
decode_params_from(const char **pp, const char *end, int n)
{
	const char *p = *pp;
	PggoWireParam *wp;

	if (n < 0)
		ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
						errmsg("pggo: malformed parameter buffer")));
	wp = palloc0(sizeof(PggoWireParam) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		uint8		kind;
		uint32		oid;

		p = read_bytes(p, end, &kind, 1);
		p = read_bytes(p, end, &oid, 4);
		wp[i].kind = kind;
		wp[i].oid = oid;
		switch (kind)
		{
			case WIRE_NULL:
				break;
			case WIRE_INT64:
				p = read_bytes(p, end, &wp[i].i, 8);
				break;
			case WIRE_FLOAT64:
				p = read_bytes(p, end, &wp[i].f, 8);
				break;
			case WIRE_TIME:
				p = read_bytes(p, end, &wp[i].i, 8);
				p = read_bytes(p, end, &wp[i].offset, 4);
				if (wp[i].offset <= -86400 || wp[i].offset >= 86400)
					ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
									errmsg("pggo: malformed parameter buffer")));
				break;
			case WIRE_TEXT:
			case WIRE_BINARY:
				p = read_bytes(p, end, &wp[i].len, 4);
				if (end - p < (ptrdiff_t) wp[i].len)
					ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
									errmsg("pggo: malformed parameter buffer")));
				wp[i].b = p;
				p += wp[i].len;
				break;
			default:
				ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
								errmsg("pggo: unknown parameter kind %d", kind)));
		}
	}
	*pp = p;
	return wp;
}

PggoWireParam *
pggo_decode_params(const char *p, size_t len, int n)
{
	return decode_params_from(&p, p + len, n);
}

/* A value's text through the type's input function (e.g. numeric). */
static Datum
text_to_type(char *text, Oid type)
{
	Oid			typinput,
				typioparam;

	getTypeInputInfo(type, &typinput, &typioparam);
	return OidInputFunctionCall(typinput, text, typioparam, -1);
}

/* PostgreSQL's text for an integer-kind wire value. */
static char *
int_as_text(PggoWireParam *w)
{
	if (w->oid == BOOLOID)
		return pstrdup(w->i ? "true" : "false");
	if (w->oid == TIMESTAMPTZOID)
		return DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(w->i)));
	return psprintf("%lld", (long long) w->i);
}

static void
time_out_of_range(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("timestamp out of range")));
}

/*
 * A Go time.Time: an instant and the offset of its zone. The rule, the same
 * on every path (Exec, Prepare, database/sql, a SQL function's result):
 * timestamptz gets the instant; timestamp gets the wall clock Go shows for
 * it (in its own Location); date gets that wall clock's date; any other type
 * gets the ISO text of the wall clock with its offset, through its input
 * function. The server's TimeZone plays no part.
 */
static Datum
time_datum(PggoWireParam *w, Oid type)
{
	Timestamp	wall;
	struct pg_tm tm;
	fsec_t		fsec;
	int			off,
				year;
	char	   *text;

	if (!IS_VALID_TIMESTAMP(w->i))
		time_out_of_range();
	if (type == TIMESTAMPTZOID)
		return TimestampTzGetDatum(w->i);
	wall = w->i + (int64) w->offset * USECS_PER_SEC;
	if (!IS_VALID_TIMESTAMP(wall))
		time_out_of_range();
	if (type == TIMESTAMPOID)
		return TimestampGetDatum(wall);
	if (type == DATEOID)
	{
		int64		days = wall / USECS_PER_DAY;

		if (wall % USECS_PER_DAY < 0)
			days--;				/* floor, before 2000 too */
		return DateADTGetDatum((DateADT) days);
	}
	if (timestamp2tm(wall, NULL, &tm, &fsec, NULL, NULL) != 0)
		time_out_of_range();
	off = w->offset;
	year = tm.tm_year > 0 ? tm.tm_year : -(tm.tm_year - 1);
	text = psprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d%c%02d:%02d:%02d%s",
					year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec,
					off < 0 ? '-' : '+', abs(off) / 3600, abs(off) % 3600 / 60, abs(off) % 60,
					tm.tm_year > 0 ? "" : " BC");
	if (type == TEXTOID || type == VARCHAROID)
		return PointerGetDatum(cstring_to_text(text));
	return text_to_type(text, type);
}

static void
no_nul(PggoWireParam *w, int index)
{
	if (memchr(w->b, '\0', w->len) == NULL)
		return;
	/* 22021, as PostgreSQL reports a NUL byte in text from a client. */
	if (index < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("pggo: the Go function's result contains a NUL byte (0x00), which PostgreSQL text cannot store")));
	ereport(ERROR,
			(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
			 errmsg("pggo: parameter $%d contains a NUL byte (0x00), which PostgreSQL text cannot store",
					index + 1)));
}

/* Turn one Go value into a Datum of the type the parser settled on. */
Datum
pggo_param_datum(PggoWireParam *w, Oid type, int index)
{
	switch (w->kind)
	{
		case WIRE_INT64:
			/* The fast path, when the Go value's kind fits the type. */
			if (w->oid == INT8OID || w->oid == INT4OID || w->oid == INT2OID)
			{
				switch (type)
				{
					case INT8OID:
						return Int64GetDatum(w->i);
					case INT4OID:
						if (w->i < PG_INT32_MIN || w->i > PG_INT32_MAX)
							ereport(ERROR,
									(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
									 errmsg("pggo: value %lld is out of range for type integer", (long long) w->i)));
						return Int32GetDatum((int32) w->i);
					case INT2OID:
						if (w->i < PG_INT16_MIN || w->i > PG_INT16_MAX)
							ereport(ERROR,
									(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
									 errmsg("pggo: value %lld is out of range for type smallint", (long long) w->i)));
						return Int16GetDatum((int16) w->i);
				}
			}
			else if (w->oid == BOOLOID && type == BOOLOID)
				return BoolGetDatum(w->i != 0);
			else if (w->oid == TIMESTAMPTZOID)
			{
				/* Microseconds since 2000-01-01 UTC: an instant. */
				PggoWireParam t = *w;

				t.kind = WIRE_TIME;
				t.offset = 0;
				return time_datum(&t, type);
			}
			return text_to_type(int_as_text(w), type);
		case WIRE_FLOAT64:
			if (type == FLOAT8OID)
				return Float8GetDatum(w->f);
			if (type == FLOAT4OID)
			{
				/* As float4in would: out of range is an error, not Infinity. */
				float4		r = (float4) w->f;

				if (isinf(r) && !isinf(w->f))
					float_overflow_error();
				if (r == 0.0f && w->f != 0.0)
					float_underflow_error();
				return Float4GetDatum(r);
			}
			/* numeric and the like: through the type's input function. */
			return text_to_type(float8out_internal(w->f), type);
		case WIRE_TIME:
			return time_datum(w, type);
		case WIRE_BINARY:
			if (type == BYTEAOID)
			{
				bytea	   *b = palloc(VARHDRSZ + w->len);

				SET_VARSIZE(b, VARHDRSZ + w->len);
				memcpy(VARDATA(b), w->b, w->len);
				return PointerGetDatum(b);
			}
			break;
		case WIRE_TEXT:
			{
				char	   *s;

				/* C strings stop at NUL; the lengths below would not. */
				no_nul(w, index);
				s = pnstrdup(w->b, w->len);
				/* Text must be valid in the server encoding, as from a client. */
				pg_verifymbstr(s, w->len, false);
				if (type == TEXTOID || type == VARCHAROID)
					return PointerGetDatum(cstring_to_text_with_len(s, w->len));
				if (type == UNKNOWNOID)
					return CStringGetDatum(s);
				return text_to_type(s, type);
			}
	}
	if (index < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("pggo: the Go function's result cannot be returned as type %s",
						format_type_be(type))));
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("pggo: parameter $%d: cannot pass this Go value as type %s",
					index + 1, format_type_be(type))));
	return (Datum) 0;
}


/* ---------------------------------------------------------------------
 * Results: Datums into the wire format
 * ---------------------------------------------------------------------
 */
/*
 * n bytes onto s. Rows are packed a value at a time, so this is the
 * innermost loop of reading: one capacity check and a memcpy, without
 * appendBinaryStringInfo's call and terminating NUL (nothing reads the
 * buffer as a C string; hand_over passes its length).
 */
static inline void
put_raw(StringInfo s, const void *p, size_t n)
{
	if ((size_t) (s->maxlen - s->len) <= n)
		enlargeStringInfo(s, (int) n);
	memcpy(s->data + s->len, p, n);
	s->len += (int) n;
}

/* A kind byte and its 8-byte payload in one write. */
static inline void
put_kind8(StringInfo s, uint8 kind, const void *v8)
{
	char		b[9];

	b[0] = (char) kind;
	memcpy(b + 1, v8, 8);
	put_raw(s, b, 9);
}

static inline void
put_kind_i64(StringInfo s, uint8 kind, int64 v)
{
	put_kind8(s, kind, &v);
}

static void
put_u8(StringInfo s, uint8 v)
{
	put_raw(s, &v, 1);
}

void
pggo_put_u32(StringInfo s, uint32 v)
{
	appendBinaryStringInfo(s, (char *) &v, 4);
}

void
pggo_put_i64(StringInfo s, int64 v)
{
	appendBinaryStringInfo(s, (char *) &v, 8);
}

static void
put_bytes(StringInfo s, uint8 kind, const char *p, size_t len)
{
	char		h[5];
	uint32		l = (uint32) len;

	h[0] = (char) kind;
	memcpy(h + 1, &l, 4);
	if ((size_t) (s->maxlen - s->len) <= len + 5)
		enlargeStringInfo(s, (int) (len + 5));
	memcpy(s->data + s->len, h, 5);
	memcpy(s->data + s->len + 5, p, len);
	s->len += (int) (len + 5);
}

/* Append one value in the wire format; out caches the output function. */
void
pggo_pack_datum(StringInfo s, Oid type, Datum d, bool isnull, FmgrInfo *out, bool *have_out)
{
	if (isnull)
	{
		put_u8(s, WIRE_NULL);
		return;
	}
	switch (type)
	{
		case BOOLOID:
			put_kind_i64(s, WIRE_INT64, DatumGetBool(d) ? 1 : 0);
			break;
		case INT2OID:
			put_kind_i64(s, WIRE_INT64, DatumGetInt16(d));
			break;
		case INT4OID:
			put_kind_i64(s, WIRE_INT64, DatumGetInt32(d));
			break;
		case INT8OID:
			put_kind_i64(s, WIRE_INT64, DatumGetInt64(d));
			break;
		case OIDOID:
			put_kind_i64(s, WIRE_INT64, DatumGetObjectId(d));
			break;
		case FLOAT4OID:
			{
				double		f = DatumGetFloat4(d);

				put_kind8(s, WIRE_FLOAT64, &f);
			}
			break;
		case FLOAT8OID:
			{
				double		f = DatumGetFloat8(d);

				put_kind8(s, WIRE_FLOAT64, &f);
			}
			break;
		case DATEOID:
			put_kind_i64(s, WIRE_INT64, DatumGetDateADT(d));
			break;
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			put_kind_i64(s, WIRE_INT64, DatumGetTimestamp(d));
			break;
		case TIMEOID:
			put_kind_i64(s, WIRE_INT64, DatumGetTimeADT(d));
			break;
		case NAMEOID:
			{
				const char *n = NameStr(*DatumGetName(d));

				put_bytes(s, WIRE_TEXT, n, strlen(n));
				break;
			}
		case BYTEAOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case JSONOID:
		case XMLOID:
			{
				struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(d));

				put_bytes(s, type == BYTEAOID ? WIRE_BINARY : WIRE_TEXT,
						  VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
				if ((Pointer) v != DatumGetPointer(d))
					pfree(v);
				break;
			}
		default:
			{
				char	   *text;

				if (!*have_out)
				{
					Oid			fn;
					bool		varlena;

					getTypeOutputInfo(type, &fn, &varlena);
					fmgr_info(fn, out);
					*have_out = true;
				}
				text = OutputFunctionCall(out, d);
				put_bytes(s, WIRE_TEXT, text, strlen(text));
				pfree(text);
			}
	}
}

/* Column count and descriptions; returns where the row count goes. */
static int
pack_header(StringInfo s, TupleDesc desc)
{
	int			at;

	pggo_put_u32(s, desc->natts);
	for (int c = 0; c < desc->natts; c++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, c);
		const char *name = NameStr(att->attname);

		pggo_put_u32(s, att->atttypid);
		pggo_put_u32(s, strlen(name));
		appendBinaryStringInfo(s, name, strlen(name));
	}
	at = s->len;
	pggo_put_i64(s, 0);
	return at;
}

static void
patch_count(StringInfo s, int at, uint64 nrows)
{
	int64		n = (int64) nrows;

	memcpy(s->data + at, &n, 8);
}

/* Rows of tt in the wire format; out/have_out cache output functions. */
static void
pack_rows(StringInfo s, SPITupleTable *tt, uint64 nrows, FmgrInfo *out, bool *have_out)
{
	TupleDesc	desc = tt->tupdesc;
	int			ncols = desc->natts;
	Datum	   *values = palloc(sizeof(Datum) * Max(ncols, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(ncols, 1));

	for (uint64 r = 0; r < nrows; r++)
	{
		/*
		 * One exported call per row, not an inline heap_getattr per column:
		 * faster, and independent of the headers' minor release (17.12's
		 * inline heap_getattr calls a function a 17.10 server lacks).
		 */
		heap_deform_tuple(tt->vals[r], desc, values, nulls);
		for (int c = 0; c < ncols; c++)
			pggo_pack_datum(s, TupleDescAttr(desc, c)->atttypid, values[c], nulls[c], &out[c], &have_out[c]);
	}
	pfree(values);
	pfree(nulls);
}

/* SPI_tuptable, all of it, into the wire format. */
static void
pack_result(StringInfo s, SPITupleTable *tt, uint64 nrows)
{
	int			ncols,
				at;
	FmgrInfo   *out;
	bool	   *have_out;

	if (tt == NULL)
	{
		pggo_put_u32(s, 0);
		pggo_put_i64(s, 0);
		return;
	}
	ncols = tt->tupdesc->natts;
	out = palloc0(sizeof(FmgrInfo) * Max(ncols, 1));
	have_out = palloc0(sizeof(bool) * Max(ncols, 1));
	at = pack_header(s, tt->tupdesc);
	pack_rows(s, tt, nrows, out, have_out);
	patch_count(s, at, nrows);
}

/*
 * Up to maxrows rows of a cursor, but no more than PGGO_BATCH_BYTES once
 * packed: a few rows first to learn their size, then as many as fit. Sets
 * out->more unless the cursor is known to be exhausted.
 */
static void
fetch_batch(Portal portal, long maxrows, StringInfo s, pggo_buf *out)
{
	uint64		total = 0;
	long		step = Min(maxrows, (long) PGGO_PROBE_ROWS);
	int			at = -1,
				rows_from = 0;
	FmgrInfo   *fout = NULL;
	bool	   *have_out = NULL;
	bool		more = true;
	MemoryContext cxt = CurrentMemoryContext;

	if (maxrows <= 0)
		step = maxrows = PGGO_PROBE_ROWS;
	while (total < (uint64) maxrows)
	{
		SPITupleTable *tt;
		uint64		n;
		size_t		per_row,
					room;

		SPI_cursor_fetch(portal, true, step);
		MemoryContextSwitchTo(cxt);
		tt = SPI_tuptable;
		n = SPI_processed;
		if (at < 0)
		{
			int			ncols = tt ? tt->tupdesc->natts : 0;

			if (tt == NULL)
			{
				pggo_put_u32(s, 0);
				at = s->len;
				pggo_put_i64(s, 0);
				more = false;
				break;
			}
			at = pack_header(s, tt->tupdesc);
			rows_from = s->len;
			fout = palloc0(sizeof(FmgrInfo) * Max(ncols, 1));
			have_out = palloc0(sizeof(bool) * Max(ncols, 1));
		}
		pack_rows(s, tt, n, fout, have_out);
		SPI_freetuptable(tt);
		total += n;
		if (n < (uint64) step)
		{
			more = false;
			break;
		}
		if (s->len >= PGGO_BATCH_BYTES)
			break;
		per_row = Max((size_t) 1, (size_t) (s->len - rows_from) / total);
		room = (PGGO_BATCH_BYTES - s->len) / per_row + 1;
		step = (long) Min((uint64) room, (uint64) maxrows - total);
	}
	patch_count(s, at, total);
	out->processed = total;
	out->more = more ? 1 : 0;
}


/* ---------------------------------------------------------------------
 * Statements
 * ---------------------------------------------------------------------
 */
typedef struct PggoPlan
{
	SPIPlanPtr	plan;
	int			ntypes;
	Oid			types[FLEXIBLE_ARRAY_MEMBER];
} PggoPlan;

/*
 * Memory for one SPI call: parameters, the packed result. One context per
 * frame, reset at each call, so a long transaction does not pile up
 * per-statement memory (SPI's procedure context lives until commit) and no
 * context is created per statement. Per frame: a Go SQL function that a
 * worker's statement calls runs SPI while the worker's call is half-way
 * through its own parameters and result.
 */
static MemoryContext
call_cxt(void)
{
	PggoFrame  *f = pggo_frame();

	if (f->spi_cxt == NULL)
		f->spi_cxt = AllocSetContextCreate(f->kind == PGGO_FRAME_WORKER ? TopMemoryContext : f->entry_cxt,
										   "pggo SPI call", ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(f->spi_cxt);
	return f->spi_cxt;
}

/*
 * The buffer results are packed into, kept across calls of the frame:
 * growing a fresh one for every batch cost reallocations and page faults
 * on every fetch. A buffer that grew past 16 MB for one large result is
 * given back.
 */
static StringInfo
result_buffer(void)
{
	PggoFrame  *f = pggo_frame();
	StringInfo	r = &f->result;

	if (r->data != NULL && r->maxlen > 16 * 1024 * 1024)
	{
		pfree(r->data);
		r->data = NULL;
	}
	if (r->data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(f->kind == PGGO_FRAME_WORKER ? TopMemoryContext : f->entry_cxt);

		initStringInfo(r);
		enlargeStringInfo(r, f->kind == PGGO_FRAME_WORKER ? 256 * 1024 : 8192);
		MemoryContextSwitchTo(old);
	}
	resetStringInfo(r);
	return r;
}

/* SPI's read_only: a STABLE or IMMUTABLE Go SQL function's statements. */
static bool
spi_read_only(void)
{
	return pggo_frame()->read_only;
}

/*
 * The end of a function frame's SPI: SPI_finish, then its memory. On the
 * normal path only (an error's abort cleans up after SPI itself).
 */
void
pggo_spi_frame_end(PggoFrame *f)
{
	if (f->spi_connected)
		SPI_finish();
	if (f->spi_cxt != NULL)
		MemoryContextDelete(f->spi_cxt);
	else if (f->result.data != NULL)
		pfree(f->result.data);
	f->spi_cxt = NULL;
	f->result.data = NULL;
	f->spi_connected = false;
}

/* The packed result: Go copies it before its next call. */
static void
hand_over(StringInfo s, pggo_buf *out)
{
	out->data = s->data;
	out->len = s->len;
}

/* Parameter list for a plan with fixed types. */
static ParamListInfo
make_params(PggoWireParam *wp, int n, const Oid *types)
{
	ParamListInfo pli = makeParamList(n);

	for (int i = 0; i < n; i++)
	{
		ParamExternData *prm = &pli->params[i];

		prm->ptype = types[i];
		prm->pflags = PARAM_FLAG_CONST;
		prm->isnull = wp[i].kind == WIRE_NULL;
		prm->value = prm->isnull ? (Datum) 0 : pggo_param_datum(&wp[i], types[i], i);
	}
	return pli;
}

/*
 * Parse sql with the types Go declared and let PostgreSQL infer the others
 * (variable parameters, as the extended protocol does); return the settled
 * types, unknown ones as text.
 */
static Oid *
infer_types(const char *sql, const Oid *declared, int ndeclared, int *ntypes)
{
	VarParams	vp;
	SPIPrepareOptions popts;
	SPIPlanPtr	plan;

	vp.ntypes = ndeclared;
	vp.types = palloc0(sizeof(Oid) * Max(ndeclared, 1));
	if (ndeclared > 0)
		memcpy(vp.types, declared, sizeof(Oid) * ndeclared);
	memset(&popts, 0, sizeof(popts));
	popts.parserSetup = varparams_setup;
	popts.parserSetupArg = &vp;
	popts.parseMode = RAW_PARSE_DEFAULT;
	plan = SPI_prepare_extended(sql, &popts);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_freeplan(plan);
	for (int i = 0; i < vp.ntypes; i++)
		if (vp.types[i] == InvalidOid)
			vp.types[i] = TEXTOID;
	*ntypes = vp.ntypes;
	return vp.types;
}

/*
 * Wraps an SPI operation: a frame's own SPI is never re-entered (a nested
 * Go SQL function has a frame of its own), and a function frame connects
 * SPI on first use.
 */
static void
enter_spi(void)
{
	PggoFrame  *f = pggo_frame();

	if (f->spi_depth > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pggo: SPI was re-entered while a statement is running")));
	if (f->kind == PGGO_FRAME_FUNCTION && !f->spi_connected)
	{
		MemoryContext cxt = CurrentMemoryContext;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		f->spi_connected = true;
		MemoryContextSwitchTo(cxt);
	}
	f->spi_depth++;
}

static void
leave_spi(void)
{
	pggo_frame()->spi_depth--;
}

/* Run op under the guard with the re-entrancy check. */
typedef struct SpiCall
{
	void		(*op) (void *);
	void	   *arg;
} SpiCall;

static void
op_spi(void *p)
{
	SpiCall    *c = p;

	enter_spi();
	PG_TRY();
	{
		c->op(c->arg);
	}
	PG_FINALLY();
	{
		leave_spi();
	}
	PG_END_TRY();
}

static int
spi_guard(void (*op) (void *), void *arg, pggo_error *err)
{
	SpiCall		c = {op, arg};

	return pggo_guard(op_spi, &c, err);
}

typedef struct PrepareArgs
{
	const char *sql;
	size_t		sqllen;
	const unsigned *types;
	int			ntypes;
	bool		cache_only;		/* the plan cache: worth-keeping statements only */
	PggoPlan   *plan;
} PrepareArgs;

/*
 * Whether the plan cache may keep sql: exactly one SELECT (VALUES, TABLE),
 * INSERT, UPDATE, DELETE or MERGE. Several statements must not be analysed
 * before the first has run (CREATE TABLE t; INSERT INTO t ...), and utility
 * statements have no plan worth keeping.
 */
static bool
cacheable(const char *sql)
{
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Node	   *stmt;

	if (list_length(raw) != 1)
		return false;
	stmt = linitial_node(RawStmt, raw)->stmt;
	switch (nodeTag(stmt))
	{
		case T_SelectStmt:
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
#if PG_VERSION_NUM >= 150000
		case T_MergeStmt:
#endif
			return true;
		default:
			return false;
	}
}

static void
op_prepare(void *p)
{
	PrepareArgs *a = p;
	char	   *sql = pnstrdup(a->sql, a->sqllen);
	Oid		   *types;
	int			n;
	SPIPlanPtr	plan;
	PggoPlan   *pp;

	if (a->cache_only && !cacheable(sql))
		return;
	types = infer_types(sql, (const Oid *) a->types, a->ntypes, &n);
	/* The kept plan has fixed types: no parser hook pointing at this frame. */
	plan = SPI_prepare(sql, n, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	pp = malloc(offsetof(PggoPlan, types) + sizeof(Oid) * Max(n, 1));
	if (pp == NULL)
	{
		SPI_freeplan(plan);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	SPI_keepplan(plan);
	pp->plan = plan;
	pp->ntypes = n;
	memcpy(pp->types, types, sizeof(Oid) * n);
	a->plan = pp;
}

static int
prepare(const char *sql, size_t sqllen, const unsigned *types, int ntypes, bool cache_only,
		void **plan, unsigned **types_out, int *ntypes_out, pggo_error *err)
{
	PrepareArgs a = {sql, sqllen, types, ntypes, cache_only, NULL};

	*plan = NULL;
	*types_out = NULL;
	*ntypes_out = 0;
	if (!pggo_spi_usable(err))
		return -1;
	if (spi_guard(op_prepare, &a, err) != 0)
		return -1;
	if (a.plan == NULL)
		return 0;				/* not worth caching (cache_only) */
	*plan = a.plan;
	*ntypes_out = a.plan->ntypes;
	*types_out = malloc(sizeof(unsigned) * Max(a.plan->ntypes, 1));
	memcpy(*types_out, a.plan->types, sizeof(unsigned) * a.plan->ntypes);
	return 0;
}

int
api_spi_prepare(const char *sql, size_t sqllen, const unsigned *types, int ntypes,
				void **plan, unsigned **types_out, int *ntypes_out, pggo_error *err)
{
	return prepare(sql, sqllen, types, ntypes, false, plan, types_out, ntypes_out, err);
}

int
api_spi_prepare_cached(const char *sql, size_t sqllen, const unsigned *types, int ntypes,
					   void **plan, unsigned **types_out, int *ntypes_out, pggo_error *err)
{
	return prepare(sql, sqllen, types, ntypes, true, plan, types_out, ntypes_out, err);
}

static void
op_free_plan(void *p)
{
	PggoPlan   *pp = p;

	SPI_freeplan(pp->plan);
}

int
api_spi_free_plan(void *plan, pggo_error *err)
{
	int			rc;

	/* A kept plan outlives transactions; freeing it needs no transaction. */
	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	rc = spi_guard(op_free_plan, plan, err);
	if (rc == 0)
		free(plan);
	return rc;
}

typedef struct QueryArgs
{
	PggoPlan   *plan;
	const char *sql;
	size_t		sqllen;
	const char *params;
	size_t		paramslen;
	int			nparams;
	int64		maxrows;		/* < 0: only the count, no rows (Exec) */
	long		batch;			/* 0: run to completion, no cursor */
	pggo_buf   *out;
	char	   *portal;
} QueryArgs;

/*
 * Statements run once with arguments: the parser infers the parameter types
 * (variable parameters) and the values are converted on first use, when the
 * types are known, so SPI can use a one-shot plan instead of building,
 * copying and freeing a saved one on every call.
 */
typedef struct LazyParams
{
	PggoWireParam *wp;
	int			n;
	VarParams  *vp;
	bool	   *converted;
} LazyParams;

static ParamExternData *
lazy_param_fetch(ParamListInfo params, int paramid, bool speculative,
				 ParamExternData *workspace)
{
	LazyParams *lp = params->paramFetchArg;
	ParamExternData *prm;
	Oid			type;

	/* PostgreSQL checks the range before asking; be safe all the same. */
	if (paramid <= 0 || paramid > lp->n)
	{
		if (speculative)
		{
			workspace->ptype = InvalidOid;	/* "value not known" */
			workspace->isnull = true;
			workspace->value = (Datum) 0;
			workspace->pflags = 0;
			return workspace;
		}
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_PARAMETER),
				 errmsg("the statement uses $%d but only %d argument%s given",
						paramid, lp->n, lp->n == 1 ? " was" : "s were")));
	}
	prm = &params->params[paramid - 1];
	if (!lp->converted[paramid - 1])
	{
		type = paramid <= lp->vp->ntypes ? lp->vp->types[paramid - 1] : InvalidOid;
		if (type == InvalidOid)
			type = TEXTOID;
		prm->ptype = type;
		prm->pflags = PARAM_FLAG_CONST;
		prm->isnull = lp->wp[paramid - 1].kind == WIRE_NULL;
		prm->value = prm->isnull ? (Datum) 0 : pggo_param_datum(&lp->wp[paramid - 1], type, paramid - 1);
		lp->converted[paramid - 1] = true;
	}
	return prm;
}

static int
execute_once_with_args(const char *sql, size_t sqllen, PggoWireParam *wp, int n, long tcount)
{
	VarParams  *vp = palloc0(sizeof(VarParams));
	LazyParams *lp = palloc0(sizeof(LazyParams));
	ParamListInfo pli = makeParamList(n);
	SPIExecuteOptions eopts;

	vp->ntypes = n;
	vp->types = palloc0(sizeof(Oid) * n);
	for (int i = 0; i < n; i++)
		vp->types[i] = wp[i].oid;
	lp->wp = wp;
	lp->n = n;
	lp->vp = vp;
	lp->converted = palloc0(sizeof(bool) * n);
	pli->paramFetch = lazy_param_fetch;
	pli->paramFetchArg = lp;
	pli->parserSetup = varparams_setup;
	pli->parserSetupArg = vp;

	memset(&eopts, 0, sizeof(eopts));
	eopts.read_only = spi_read_only();
	eopts.params = pli;
	eopts.tcount = tcount;
	return SPI_execute_extended(pnstrdup(sql, sqllen), &eopts);
}

static void
op_query(void *p)
{
	QueryArgs  *a = p;
	MemoryContext callcxt = call_cxt();
	MemoryContext old = MemoryContextSwitchTo(callcxt);
	PggoWireParam *wp = pggo_decode_params(a->params, a->paramslen, a->nparams);
	SPIPlanPtr	plan = NULL;
	const Oid  *types = NULL;
	int			ntypes = 0;
	ParamListInfo pli = NULL;
	bool		want_rows = a->maxrows >= 0;
	long		tcount = a->maxrows > 0 ? a->maxrows : 0;
	int			rc;

	if (a->plan)
	{
		plan = a->plan->plan;
		types = a->plan->types;
		ntypes = a->plan->ntypes;
	}
	else if (a->batch > 0)
	{
		/* A cursor needs a plan: a one-shot one; vp outlives its use. */
		char	   *sql = pnstrdup(a->sql, a->sqllen);
		VarParams  *vp = palloc0(sizeof(VarParams));
		SPIPrepareOptions popts;

		vp->ntypes = a->nparams;
		vp->types = palloc0(sizeof(Oid) * Max(a->nparams, 1));
		for (int i = 0; i < a->nparams; i++)
			vp->types[i] = wp[i].oid;
		memset(&popts, 0, sizeof(popts));
		popts.parserSetup = varparams_setup;
		popts.parserSetupArg = vp;
		popts.parseMode = RAW_PARSE_DEFAULT;
		plan = SPI_prepare_extended(sql, &popts);
		MemoryContextSwitchTo(callcxt);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		for (int i = 0; i < vp->ntypes; i++)
			if (vp->types[i] == InvalidOid)
				vp->types[i] = TEXTOID;
		types = vp->types;
		ntypes = vp->ntypes;
	}
	if (plan != NULL)
	{
		if (ntypes != a->nparams)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_PARAMETER),
					 errmsg("the statement takes %d parameter%s but %d argument%s given",
							ntypes, ntypes == 1 ? "" : "s", a->nparams, a->nparams == 1 ? " was" : "s were")));
		pli = make_params(wp, a->nparams, types);
	}

	if (a->batch > 0 && SPI_is_cursor_plan(plan))
	{
		Portal		portal = SPI_cursor_open_with_paramlist(NULL, plan, pli, spi_read_only());
		StringInfo	s;

		MemoryContextSwitchTo(callcxt);
		s = result_buffer();
		fetch_batch(portal, a->batch, s, a->out);
		hand_over(s, a->out);
		/*
		 * A result that fit the first batch needs no cursor any more: close
		 * it here rather than in one more call from Go.
		 */
		if (a->out->more)
		{
			a->portal = strdup(portal->name);
			if (a->portal == NULL)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		}
		else
			SPI_cursor_close(portal);
		if (!a->plan)
			SPI_freeplan(plan);	/* the cursor keeps its own copy */
		MemoryContextSwitchTo(old);
		return;
	}
	if (plan != NULL)
	{
		SPIExecuteOptions eopts;

		memset(&eopts, 0, sizeof(eopts));
	eopts.read_only = spi_read_only();
		eopts.params = pli;
		eopts.tcount = tcount;
		rc = SPI_execute_plan_extended(plan, &eopts);
		if (rc < 0)
			elog(ERROR, "SPI failed: %s", SPI_result_code_string(rc));
	}
	else
	{
		/* No cursor: SPI's one-shot plan, nothing kept. */
		if (a->nparams > 0)
			rc = execute_once_with_args(a->sql, a->sqllen, wp, a->nparams, tcount);
		else
			rc = SPI_execute(pnstrdup(a->sql, a->sqllen), spi_read_only(), tcount);
		if (rc < 0)
			elog(ERROR, "SPI failed: %s", SPI_result_code_string(rc));
	}
	/* SPI leaves its procedure context current: allocate in ours again. */
	MemoryContextSwitchTo(callcxt);
	a->out->processed = SPI_processed;
	a->out->more = 0;
	if (want_rows)
	{
		StringInfo	s = result_buffer();

		pack_result(s, SPI_tuptable, SPI_tuptable ? SPI_processed : 0);
		hand_over(s, a->out);
	}
	if (SPI_tuptable)
		SPI_freetuptable(SPI_tuptable);
	if (plan != NULL && !a->plan)
		SPI_freeplan(plan);
	MemoryContextSwitchTo(old);
}

static void
init_query(QueryArgs *a, PggoPlan *plan, const char *sql, size_t sqllen, const char *params,
		   size_t paramslen, int nparams, int64 maxrows, long batch, pggo_buf *out)
{
	memset(a, 0, sizeof(*a));
	a->plan = plan;
	a->sql = sql;
	a->sqllen = sqllen;
	a->params = params;
	a->paramslen = paramslen;
	a->nparams = nparams;
	a->maxrows = maxrows;
	a->batch = batch;
	a->out = out;
}

int
api_spi_exec(const char *sql, size_t sqllen, const char *params, size_t paramslen,
			 int nparams, int64_t maxrows, pggo_buf *out, pggo_error *err)
{
	QueryArgs	a;

	memset(out, 0, sizeof(*out));
	if (!pggo_spi_usable(err))
		return -1;
	init_query(&a, NULL, sql, sqllen, params, paramslen, nparams, maxrows, 0, out);
	return spi_guard(op_query, &a, err);
}

int
api_spi_exec_plan(void *plan, const char *params, size_t paramslen, int nparams,
				  int64_t maxrows, pggo_buf *out, pggo_error *err)
{
	QueryArgs	a;

	memset(out, 0, sizeof(*out));
	if (!pggo_spi_usable(err))
		return -1;
	init_query(&a, plan, NULL, 0, params, paramslen, nparams, maxrows, 0, out);
	return spi_guard(op_query, &a, err);
}

int
api_spi_query(void *plan, const char *sql, size_t sqllen, const char *params, size_t paramslen,
			  int nparams, long batch, pggo_buf *out, char **portal, pggo_error *err)
{
	QueryArgs	a;

	memset(out, 0, sizeof(*out));
	*portal = NULL;
	if (!pggo_spi_usable(err))
		return -1;
	init_query(&a, plan, sql, sqllen, params, paramslen, nparams, 0, batch, out);
	if (spi_guard(op_query, &a, err) != 0)
	{
		free(a.portal);
		memset(out, 0, sizeof(*out));
		return -1;
	}
	*portal = a.portal;
	return 0;
}

/* ---------------------------------------------------------------------
 * One row without a cursor (QueryRow), and batches of argument rows
 * ---------------------------------------------------------------------
 */

/*
 * A single SELECT may stop at its first row, as a cursor read once would
 * and as PL/pgSQL's SELECT INTO does; anything else (INSERT ... RETURNING,
 * several statements, utility commands) must run to completion, as the
 * cursor path ran it (a RETURNING portal is filled at its first fetch).
 */
static bool
single_select(SPIPlanPtr plan)
{
	List	   *srcs = SPI_plan_get_plan_sources(plan);

	return list_length(srcs) == 1 &&
		((CachedPlanSource *) linitial(srcs))->commandTag == CMDTAG_SELECT;
}

/* A one-shot plan of sql with variable parameters; types settle in *vpp. */
static SPIPlanPtr
one_shot_plan(const char *sql, size_t sqllen, PggoWireParam *wp, int n, VarParams **vpp)
{
	VarParams  *vp = palloc0(sizeof(VarParams));
	SPIPrepareOptions popts;
	SPIPlanPtr	plan;
	MemoryContext cxt = CurrentMemoryContext;

	vp->ntypes = n;
	vp->types = palloc0(sizeof(Oid) * Max(n, 1));
	for (int i = 0; i < n; i++)
		vp->types[i] = wp[i].oid;
	memset(&popts, 0, sizeof(popts));
	popts.parserSetup = varparams_setup;
	popts.parserSetupArg = vp;
	popts.parseMode = RAW_PARSE_DEFAULT;
	plan = SPI_prepare_extended(pnstrdup(sql, sqllen), &popts);
	MemoryContextSwitchTo(cxt);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	for (int i = 0; i < vp->ntypes; i++)
		if (vp->types[i] == InvalidOid)
			vp->types[i] = TEXTOID;
	*vpp = vp;
	return plan;
}

static void
check_nparams(int ntypes, int nparams)
{
	if (ntypes != nparams)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_PARAMETER),
				 errmsg("the statement takes %d parameter%s but %d argument%s given",
						ntypes, ntypes == 1 ? "" : "s", nparams, nparams == 1 ? " was" : "s were")));
}

static void
op_query_row(void *p)
{
	QueryArgs  *a = p;
	MemoryContext callcxt = call_cxt();
	MemoryContext old = MemoryContextSwitchTo(callcxt);
	PggoWireParam *wp = pggo_decode_params(a->params, a->paramslen, a->nparams);
	SPIPlanPtr	plan;
	const Oid  *types;
	int			ntypes;
	SPIExecuteOptions eopts;
	StringInfo	s;
	int			rc;

	if (a->plan)
	{
		plan = a->plan->plan;
		types = a->plan->types;
		ntypes = a->plan->ntypes;
	}
	else
	{
		VarParams  *vp;

		plan = one_shot_plan(a->sql, a->sqllen, wp, a->nparams, &vp);
		types = vp->types;
		ntypes = vp->ntypes;
	}
	check_nparams(ntypes, a->nparams);
	memset(&eopts, 0, sizeof(eopts));
	eopts.read_only = spi_read_only();
	eopts.params = make_params(wp, a->nparams, types);
	eopts.tcount = single_select(plan) ? 1 : 0;
	rc = SPI_execute_plan_extended(plan, &eopts);
	MemoryContextSwitchTo(callcxt);
	if (rc < 0)
		elog(ERROR, "SPI failed: %s", SPI_result_code_string(rc));
	a->out->processed = SPI_processed;
	a->out->more = 0;
	s = result_buffer();
	/* The first row only: Row.Scan reads no other. */
	pack_result(s, SPI_tuptable, SPI_tuptable ? Min(SPI_processed, (uint64) 1) : 0);
	hand_over(s, a->out);
	if (SPI_tuptable)
		SPI_freetuptable(SPI_tuptable);
	if (!a->plan)
		SPI_freeplan(plan);
	MemoryContextSwitchTo(old);
}

int
api_spi_query_row(void *plan, const char *sql, size_t sqllen, const char *params,
				  size_t paramslen, int nparams, pggo_buf *out, pggo_error *err)
{
	QueryArgs	a;

	memset(out, 0, sizeof(*out));
	if (!pggo_spi_usable(err))
		return -1;
	init_query(&a, plan, sql, sqllen, params, paramslen, nparams, 1, 0, out);
	return spi_guard(op_query_row, &a, err);
}

typedef struct BatchArgs
{
	PggoPlan   *plan;
	const char *params;
	size_t		paramslen;
	int			nparams;
	int64		nrows;
	uint64		processed;
} BatchArgs;

static void
op_exec_batch(void *p)
{
	BatchArgs  *a = p;
	MemoryContext callcxt = call_cxt();
	MemoryContext old = MemoryContextSwitchTo(callcxt);
	/* Per row: its Datums; reset after each run, so a batch stays small. */
	MemoryContext rowcxt = AllocSetContextCreate(callcxt, "pggo batch row",
												 ALLOCSET_DEFAULT_SIZES);
	const char *pos = a->params;
	const char *end = a->params + a->paramslen;

	check_nparams(a->plan->ntypes, a->nparams);
	for (int64 r = 0; r < a->nrows; r++)
	{
		PggoWireParam *wp;
		SPIExecuteOptions eopts;
		int			rc;

		MemoryContextSwitchTo(rowcxt);
		wp = decode_params_from(&pos, end, a->nparams);
		memset(&eopts, 0, sizeof(eopts));
	eopts.read_only = spi_read_only();
		eopts.params = make_params(wp, a->nparams, a->plan->types);
		rc = SPI_execute_plan_extended(a->plan->plan, &eopts);
		MemoryContextSwitchTo(callcxt);
		if (rc < 0)
			elog(ERROR, "SPI failed: %s", SPI_result_code_string(rc));
		a->processed += SPI_processed;
		if (SPI_tuptable)
			SPI_freetuptable(SPI_tuptable);
		MemoryContextReset(rowcxt);
	}
	if (pos != end)
		ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
						errmsg("pggo: malformed parameter buffer")));
	MemoryContextSwitchTo(old);
}

int
api_spi_exec_batch(void *plan, const char *params, size_t paramslen, int nparams,
				   int64_t nrows, uint64_t *processed, pggo_error *err)
{
	BatchArgs	a = {plan, params, paramslen, nparams, nrows, 0};

	*processed = 0;
	if (!pggo_spi_usable(err))
		return -1;
	if (spi_guard(op_exec_batch, &a, err) != 0)
		return -1;
	*processed = a.processed;
	return 0;
}

typedef struct FetchArgs
{
	const char *portal;
	long		batch;
	pggo_buf   *out;
	bool		gone;
} FetchArgs;

static void
op_fetch(void *p)
{
	FetchArgs  *a = p;
	Portal		portal = SPI_cursor_find(a->portal);
	MemoryContext old;
	StringInfo	s;

	/* The portal dies with its (sub)transaction: never use a stale pointer. */
	if (portal == NULL)
	{
		a->gone = true;
		return;
	}
	old = MemoryContextSwitchTo(call_cxt());
	s = result_buffer();
	fetch_batch(portal, a->batch, s, a->out);
	hand_over(s, a->out);
	MemoryContextSwitchTo(old);
}

int
api_spi_fetch(const char *portal, long batch, pggo_buf *out, pggo_error *err)
{
	FetchArgs	a = {portal, batch, out, false};

	memset(out, 0, sizeof(*out));
	if (!pggo_spi_usable(err))
		return -1;
	if (spi_guard(op_fetch, &a, err) != 0)
		return -1;
	if (a.gone)
	{
		/* A usage error, not PostgreSQL's: the current transaction lives on. */
		pggo_set_error(err, PGGO_EUSAGE, "34000",
					   "the rows' cursor is gone: Rows must be read inside the transaction and savepoint that opened them");
		return -1;
	}
	return 0;
}

static void
op_close_cursor(void *p)
{
	Portal		portal = SPI_cursor_find((const char *) p);

	if (portal != NULL)
		SPI_cursor_close(portal);
}

int
api_spi_close_cursor(const char *portal, pggo_error *err)
{
	/* After the transaction ended there is nothing left to close. */
	if (!pggo_on_main_thread())
		return pggo_wrong_thread(err);
	if (pggo_frame() != NULL && pggo_frame()->kind == PGGO_FRAME_WORKER && !pggo_tx_active())
		return 0;
	{
		pggo_error	ignored;

		/* A Rows closed in a frame where SPI is not usable: nothing to do. */
		if (!pggo_spi_usable(&ignored))
		{
			free(ignored.message);
			return 0;
		}
	}
	return spi_guard(op_close_cursor, (void *) portal, err);
}


/* ---------------------------------------------------------------------
 * The parameter path on its own, for the fuzz tests: one Go value into a
 * Datum of type, and back as that type's text.
 * ---------------------------------------------------------------------
 */
typedef struct RoundTripArgs
{
	const char *params;
	size_t		len;
	Oid			type;
	char	   *text;
	bool		isnull;
} RoundTripArgs;

static void
op_param_roundtrip(void *p)
{
	RoundTripArgs *a = p;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "pggo param round trip",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	PggoWireParam *w = pggo_decode_params(a->params, a->len, 1);

	if (!IsTransactionState())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("pggo: converting a parameter needs a transaction")));
	if (w->kind == WIRE_NULL)
		a->isnull = true;
	else
	{
		Datum		d = pggo_param_datum(w, a->type, 0);
		Oid			fn;
		bool		varlena;

		getTypeOutputInfo(a->type, &fn, &varlena);
		a->text = strdup(OidOutputFunctionCall(fn, d));
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

int
api_param_roundtrip(const char *params, size_t len, unsigned type, char **text, int *isnull,
					pggo_error *err)
{
	RoundTripArgs a = {params, len, type, NULL, false};

	*text = NULL;
	*isnull = 0;
	if (pggo_guard(op_param_roundtrip, &a, err) != 0)
		return -1;
	*text = a.text;
	*isnull = a.isnull ? 1 : 0;
	return 0;
}

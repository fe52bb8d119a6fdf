/*-------------------------------------------------------------------------
 *
 * loader_guc.c
 *		Settings declared in Go (package guc), defined in the postmaster.
 *
 * A custom setting is only a real GUC (bounds checked by SET and ALTER
 * SYSTEM, shown by SHOW and pg_settings, PGC_POSTMASTER honoured) once a
 * DefineCustom*Variable call has run in the process. Defining it in the
 * postmaster while it loads shared_preload_libraries gives it to every
 * process, since all are forked from there, and reads postgresql.conf's
 * value at start. The postmaster never runs Go, so the init helper
 * (loader_init.c) sends the declarations after the regions and this file
 * defines them. The reply is checked as carefully as a worker definition:
 * a length, kind or value that is wrong is FATAL naming the setting.
 *
 * The same declarations are defined in three places (PggoDefineMode): the
 * postmaster (preloaded), the init helper's own copy of it (so that the
 * start values can be handed to Go's check hooks exactly as PostgreSQL
 * parsed them), and a process that loads the library later (a backend's
 * LOAD or function call, a dynamic worker), which gets them from Go there.
 *
 * Check hooks: PostgreSQL's hook has no name argument, so each setting slot
 * has its own C hook (generated below), which calls the Go hook of that
 * setting when Go is loaded in the process; elsewhere only the bounds
 * apply. A rejection is PostgreSQL's "invalid value for parameter" with
 * Go's message as the detail; the hook never raises.
 *
 *-------------------------------------------------------------------------
 */

/* These are always necessary */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

/* These are used to define the settings */
#include <dlfcn.h>
#include <math.h>
#include "access/xact.h"
#include "utils/guc.h"

#include "pggo_loader.h"

/* What this process defined: the slot of a setting indexes its C hook. */
typedef struct Declared
{
	char	   *name;
	uint8		kind;
	void	   *var;
	const struct config_enum_entry *opts;	/* enum */
} Declared;

static Declared declared[PGGO_MAX_SETTINGS];
static int	ndeclared;

/* FATAL where a half-defined state must not go on; ERROR in the helper. */
static int	reply_elevel = FATAL;

static pggo_go_check_setting_fn go_check;

/*
 * Where Go is not loaded, a regular backend loads it for a hook that runs
 * inside a transaction: SET, ALTER SYSTEM, a function's SET clause, and the
 * startup options and ALTER ROLE ... SET values a connection applies in its
 * startup transaction. A reload (ProcessConfigFile, outside a transaction
 * in a backend) never loads it, nor does any other process.
 */
static int
go_for_check(void)
{
	char		err[1024];

	if (pggo_go_handle != NULL)
		return 1;
	if (!IsUnderPostmaster || MyBackendType != B_BACKEND || !IsTransactionState())
		return 0;
	if (!pggo_load_go(err, sizeof(err)))
	{
		GUC_check_errdetail("pggo: %s", err);
		return -1;
	}
	return 1;
}

static bool
check_slot(int slot, int64 i, double f, const char *s)
{
	Declared   *d = &declared[slot];
	char	   *msg = NULL;
	int			rc;

	rc = go_for_check();
	if (rc <= 0)
		return rc == 0;			/* no Go here: the bounds only */
	if (go_check == NULL)
		go_check = (pggo_go_check_setting_fn) dlsym(pggo_go_handle, "pggo_go_check_setting");
	if (go_check == NULL || !pggo_on_main_thread())
		return true;
	if (d->kind == PGGO_GUC_ENUM)
		s = d->opts[i].name;
	rc = go_check(d->name, i, f, s ? s : "", &msg);
	if (rc == 1)
		GUC_check_errdetail("%s", msg ? msg : "rejected by its check hook");
	free(msg);
	return rc != 1;
}

/* One C hook per slot and type (an enum's is the int one). */
#define PGGO_SLOT_HOOKS(n) \
static bool check_int_##n(int *v, void **extra, GucSource source) \
{ return check_slot(n, *v, 0, NULL); } \
static bool check_real_##n(double *v, void **extra, GucSource source) \
{ return check_slot(n, 0, *v, NULL); } \
static bool check_bool_##n(bool *v, void **extra, GucSource source) \
{ return check_slot(n, *v, 0, NULL); } \
static bool check_string_##n(char **v, void **extra, GucSource source) \
{ return check_slot(n, 0, 0, *v); }
#define PGGO_H16(X, h) X(0x##h##0) X(0x##h##1) X(0x##h##2) X(0x##h##3) X(0x##h##4) \
	X(0x##h##5) X(0x##h##6) X(0x##h##7) X(0x##h##8) X(0x##h##9) X(0x##h##a) X(0x##h##b) \
	X(0x##h##c) X(0x##h##d) X(0x##h##e) X(0x##h##f)
#define PGGO_SLOTS(X) PGGO_H16(X, 0) PGGO_H16(X, 1) PGGO_H16(X, 2) PGGO_H16(X, 3) \
	PGGO_H16(X, 4) PGGO_H16(X, 5) PGGO_H16(X, 6) PGGO_H16(X, 7) PGGO_H16(X, 8) \
	PGGO_H16(X, 9) PGGO_H16(X, a) PGGO_H16(X, b) PGGO_H16(X, c) PGGO_H16(X, d) \
	PGGO_H16(X, e) PGGO_H16(X, f)

PGGO_SLOTS(PGGO_SLOT_HOOKS)

#define PGGO_INT_HOOK(n) check_int_##n,
#define PGGO_REAL_HOOK(n) check_real_##n,
#define PGGO_BOOL_HOOK(n) check_bool_##n,
#define PGGO_STRING_HOOK(n) check_string_##n,
static GucIntCheckHook int_hooks[] = {PGGO_SLOTS(PGGO_INT_HOOK)};
static GucRealCheckHook real_hooks[] = {PGGO_SLOTS(PGGO_REAL_HOOK)};
static GucBoolCheckHook bool_hooks[] = {PGGO_SLOTS(PGGO_BOOL_HOOK)};
static GucStringCheckHook string_hooks[] = {PGGO_SLOTS(PGGO_STRING_HOOK)};

StaticAssertDecl(lengthof(int_hooks) == PGGO_MAX_SETTINGS, "one hook per setting slot");

/* The value of a real setting this process defined (pggo_api). */
int
api_get_real_setting(const char *name, double *value)
{
	if (!pggo_on_main_thread())
		return -1;
	for (int i = 0; i < ndeclared; i++)
		if (declared[i].kind == PGGO_GUC_REAL && pg_strcasecmp(declared[i].name, name) == 0)
		{
			*value = *(double *) declared[i].var;
			return 1;
		}
	return 0;
}

/* Where the reply is read from; every read checks what is left. */
typedef struct Reader
{
	const char *p;
	size_t		len;
	size_t		off;
	const char *what;			/* the setting being read, for messages */
} Reader;

static void
cut_short(Reader *r)
{
	ereport(reply_elevel, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply: setting %s is cut short",
						   pggo_loader_path, r->what)));
}

static uint32
read_u32(Reader *r)
{
	uint32		v;

	if (r->len - r->off < 4)
		cut_short(r);
	memcpy(&v, r->p + r->off, 4);
	r->off += 4;
	return v;
}

static uint8
read_u8(Reader *r)
{
	if (r->len - r->off < 1)
		cut_short(r);
	return (uint8) r->p[r->off++];
}

/* A string of at most max bytes without NUL, copied to TopMemoryContext. */
static char *
read_str(Reader *r, uint32 max, const char *field)
{
	uint32		n = read_u32(r);
	char	   *s;

	if (n > r->len - r->off)
		cut_short(r);
	if (n > max)
		ereport(reply_elevel, (errmsg("pggo: %s: setting %s: the %s has %u bytes, more than %u",
							   pggo_loader_path, r->what, field, n, max)));
	s = MemoryContextAlloc(TopMemoryContext, n + 1);
	memcpy(s, r->p + r->off, n);
	s[n] = '\0';
	r->off += n;
	if (strlen(s) != n)
		ereport(reply_elevel, (errmsg("pggo: %s: setting %s: the %s contains a NUL byte",
							   pggo_loader_path, r->what, field)));
	return s;
}

/* PostgreSQL's rule for custom names (valid_custom_variable_name). */
static bool
valid_name(const char *name)
{
	bool		saw_dot = false;
	bool		part_start = true;

	for (const char *c = name; *c; c++)
	{
		if (*c == '.')
		{
			if (part_start)
				return false;
			saw_dot = true;
			part_start = true;
		}
		else if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
				 (!part_start && ((*c >= '0' && *c <= '9') || *c == '$')))
			part_start = false;
		else
			return false;
	}
	return saw_dot && !part_start;
}

static GucContext
guc_context(uint8 c, const char *name)
{
	switch (c)
	{
		case PGGO_GUC_POSTMASTER:
			return PGC_POSTMASTER;
		case PGGO_GUC_SIGHUP:
			return PGC_SIGHUP;
		case PGGO_GUC_SUPERUSER:
			return PGC_SUSET;
		case PGGO_GUC_USER:
			return PGC_USERSET;
	}
	ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": unknown context %u", pggo_loader_path, name, c)));
	return PGC_USERSET;			/* not reached */
}

/* PostgreSQL's flags for pggo's (pggo_abi.h), per kind. */
static int
guc_flags(uint32 f, uint8 kind, const char *name)
{
	int			flags = 0;
	uint32		unit = (f >> PGGO_GUC_UNIT_SHIFT) & 0xff;
	static const int units[] = {
		[PGGO_GUC_UNIT_NONE] = 0,
		[PGGO_GUC_UNIT_BYTE] = GUC_UNIT_BYTE,
		[PGGO_GUC_UNIT_KB] = GUC_UNIT_KB,
		[PGGO_GUC_UNIT_MB] = GUC_UNIT_MB,
		[PGGO_GUC_UNIT_BLOCKS] = GUC_UNIT_BLOCKS,
		[PGGO_GUC_UNIT_MS] = GUC_UNIT_MS,
		[PGGO_GUC_UNIT_S] = GUC_UNIT_S,
		[PGGO_GUC_UNIT_MIN] = GUC_UNIT_MIN,
	};

	if ((f & ~(0xffu << PGGO_GUC_UNIT_SHIFT)) &
		~(uint32) (PGGO_GUC_F_NO_SHOW_ALL | PGGO_GUC_F_SUPERUSER_ONLY | PGGO_GUC_F_NOT_IN_SAMPLE | PGGO_GUC_F_CHECK))
		ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": unknown flags 0x%x", pggo_loader_path, name, f)));
	if (unit >= lengthof(units) || (unit != 0 && kind != PGGO_GUC_INT && kind != PGGO_GUC_REAL))
		ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": unit %u is not one of an integer or real setting",
									  pggo_loader_path, name, unit)));
	if (f & PGGO_GUC_F_NO_SHOW_ALL)
		flags |= GUC_NO_SHOW_ALL;
	if (f & PGGO_GUC_F_SUPERUSER_ONLY)
		flags |= GUC_SUPERUSER_ONLY;
	if (f & PGGO_GUC_F_NOT_IN_SAMPLE)
		flags |= GUC_NOT_IN_SAMPLE;
	return flags | units[unit];
}

/*
 * Parse the settings part of the init helper's reply (the rest of it after
 * the regions, or what pggo_go_settings gave this process) and define each
 * setting, then reserve every prefix used so that a misspelt
 * "prefix.name" in postgresql.conf is reported.
 *
 * PGGO_DEFINE_POSTMASTER: in the postmaster's _PG_init; every process
 * forked later has them. PGGO_DEFINE_HELPER: in the init helper, without
 * hooks or reserved prefixes, errors as ERROR (the helper must never run
 * the postmaster's exit path: FATAL would). PGGO_DEFINE_LATE: in a process
 * that loaded the library after start; PostgreSQL refuses PGC_POSTMASTER
 * settings then (init_custom_variable: FATAL "cannot create PGC_POSTMASTER
 * variables after startup"), so those stay placeholders holding the file's
 * value, and their prefix is not reserved (that would delete them).
 */
void
pggo_guc_define_settings(const char *p, size_t len, PggoDefineMode mode)
{
	Reader		r = {.p = p,.len = len,.off = 0,.what = "count"};
	uint32		n;
	char	  **prefixes;
	bool	   *keep;			/* per prefix: none of its settings skipped */
	int			nprefixes = 0;

	/* An extension built before settings existed sends nothing here. */
	if (len == 0)
		return;
	reply_elevel = mode == PGGO_DEFINE_HELPER ? ERROR : FATAL;
	n = read_u32(&r);
	if (n > PGGO_MAX_SETTINGS)
		ereport(reply_elevel, (errmsg("pggo: %s: %u settings declared; at most %d are supported",
									  pggo_loader_path, n, PGGO_MAX_SETTINGS)));
	prefixes = MemoryContextAllocZero(TopMemoryContext, sizeof(char *) * Max(n, 1));
	keep = MemoryContextAllocZero(TopMemoryContext, sizeof(bool) * Max(n, 1));
	for (uint32 i = 0; i < n; i++)
	{
		char		num[32];
		uint8		kind,
					ctx;
		uint32		f;
		char	   *name,
				   *desc,
				   *dot;
		GucContext	context;
		int			flags;
		bool		hook,
					skip;
		int			slot = ndeclared;
		int			known = -1;

		snprintf(num, sizeof(num), "%u", i + 1);
		r.what = num;
		kind = read_u8(&r);
		ctx = read_u8(&r);
		f = read_u32(&r);
		name = read_str(&r, PGGO_SETTING_NAMELEN, "name");
		r.what = psprintf("\"%s\"", name);
		if (!valid_name(name))
			ereport(reply_elevel,
					(errmsg("pggo: %s: setting \"%s\": not a valid custom setting name", pggo_loader_path, name),
					 errhint("Use PREFIX.NAME: letters, digits, '_' and '$' in each part, not starting with a digit.")));
		desc = read_str(&r, 10000, "description");
		context = guc_context(ctx, name);
		flags = guc_flags(f, kind, name);
		/* The helper only parses values for Go: no hooks there. */
		hook = (f & PGGO_GUC_F_CHECK) && mode != PGGO_DEFINE_HELPER;
		skip = mode == PGGO_DEFINE_LATE && context == PGC_POSTMASTER;
		declared[slot].name = name;
		declared[slot].kind = kind;
		switch (kind)
		{
			case PGGO_GUC_INT:
				{
					int32		def,
								min,
								max;
					int		   *var = MemoryContextAlloc(TopMemoryContext, sizeof(int));

					def = (int32) read_u32(&r);
					min = (int32) read_u32(&r);
					max = (int32) read_u32(&r);
					if (min > max || def < min || def > max)
						ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": the default %d is not within [%d, %d]",
													  pggo_loader_path, name, def, min, max)));
					*var = def;
					declared[slot].var = var;
					if (!skip)
						DefineCustomIntVariable(name, desc, NULL, var, def, min, max, context, flags,
												hook ? int_hooks[slot] : NULL, NULL, NULL);
					break;
				}
			case PGGO_GUC_REAL:
				{
					double		def,
								min,
								max;
					double	   *var = MemoryContextAlloc(TopMemoryContext, sizeof(double));

					if (r.len - r.off < 3 * sizeof(double))
						cut_short(&r);
					memcpy(&def, r.p + r.off, sizeof(double));
					memcpy(&min, r.p + r.off + sizeof(double), sizeof(double));
					memcpy(&max, r.p + r.off + 2 * sizeof(double), sizeof(double));
					r.off += 3 * sizeof(double);
					if (isnan(def) || isnan(min) || isnan(max) || min > max || def < min || def > max)
						ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": the default %g is not within [%g, %g]",
													  pggo_loader_path, name, def, min, max)));
					*var = def;
					declared[slot].var = var;
					if (!skip)
						DefineCustomRealVariable(name, desc, NULL, var, def, min, max, context, flags,
												 hook ? real_hooks[slot] : NULL, NULL, NULL);
					break;
				}
			case PGGO_GUC_BOOL:
				{
					uint8		def = read_u8(&r);
					bool	   *var = MemoryContextAlloc(TopMemoryContext, sizeof(bool));

					if (def > 1)
						ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": bad boolean default %u",
													  pggo_loader_path, name, def)));
					*var = def;
					declared[slot].var = var;
					if (!skip)
						DefineCustomBoolVariable(name, desc, NULL, var, def, context, flags,
												 hook ? bool_hooks[slot] : NULL, NULL, NULL);
					break;
				}
			case PGGO_GUC_STRING:
				{
					char	   *def = read_str(&r, 1 << 20, "default");
					char	  **var = MemoryContextAllocZero(TopMemoryContext, sizeof(char *));

					declared[slot].var = var;
					if (!skip)
						DefineCustomStringVariable(name, desc, NULL, var, def, context, flags,
												   hook ? string_hooks[slot] : NULL, NULL, NULL);
					break;
				}
			case PGGO_GUC_ENUM:
				{
					int32		def = (int32) read_u32(&r);
					uint32		nopts = read_u32(&r);
					struct config_enum_entry *opts;
					int		   *var = MemoryContextAlloc(TopMemoryContext, sizeof(int));

					if (nopts == 0 || nopts > PGGO_MAX_ENUM_OPTIONS)
						ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": %u options; an enum has 1 to %d",
													  pggo_loader_path, name, nopts, PGGO_MAX_ENUM_OPTIONS)));
					if (def < 0 || (uint32) def >= nopts)
						ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": the default is not one of the options",
													  pggo_loader_path, name)));
					/* PostgreSQL reads the array up to an entry without a name. */
					opts = MemoryContextAllocZero(TopMemoryContext, sizeof(*opts) * (nopts + 1));
					for (uint32 j = 0; j < nopts; j++)
					{
						opts[j].name = read_str(&r, 200, "option");
						opts[j].val = (int) j;
						if (opts[j].name[0] == '\0')
							ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": an option is empty",
														  pggo_loader_path, name)));
						for (uint32 k = 0; k < j; k++)
							if (pg_strcasecmp(opts[k].name, opts[j].name) == 0)
								ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": option \"%s\" is listed twice",
															  pggo_loader_path, name, opts[j].name)));
					}
					*var = def;
					declared[slot].var = var;
					declared[slot].opts = opts;
					if (!skip)
						DefineCustomEnumVariable(name, desc, NULL, var, def, opts, context, flags,
												 hook ? int_hooks[slot] : NULL, NULL, NULL);
					break;
				}
			default:
				ereport(reply_elevel, (errmsg("pggo: %s: setting \"%s\": unknown kind %u", pggo_loader_path, name, kind)));
		}
		/* A skipped one is a placeholder: no value of this loader to read. */
		if (!skip)
			ndeclared++;
		dot = strchr(name, '.');
		*dot = '\0';
		for (int j = 0; j < nprefixes; j++)
			if (strcmp(prefixes[j], name) == 0)
				known = j;
		if (known < 0)
		{
			known = nprefixes++;
			prefixes[known] = pstrdup(name);
			keep[known] = true;
		}
		if (skip)
			keep[known] = false;
		*dot = '.';
	}
	if (r.off != len)
		ereport(reply_elevel, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply: %zu bytes after the settings",
									  pggo_loader_path, len - r.off)));

	/*
	 * After the definitions: a placeholder left with a reserved prefix is a
	 * name no declaration matches, which PostgreSQL then reports and drops.
	 */
	if (mode == PGGO_DEFINE_HELPER)
		return;
	for (int j = 0; j < nprefixes; j++)
		if (keep[j])
			MarkGUCPrefixReserved(prefixes[j]);
}

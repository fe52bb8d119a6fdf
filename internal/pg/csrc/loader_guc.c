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
 *-------------------------------------------------------------------------
 */

/* These are always necessary */
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

/* These are used to define the settings */
#include "utils/guc.h"

#include "pggo_loader.h"

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
	ereport(FATAL, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply: setting %s is cut short",
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
		ereport(FATAL, (errmsg("pggo: %s: setting %s: the %s has %u bytes, more than %u",
							   pggo_loader_path, r->what, field, n, max)));
	s = MemoryContextAlloc(TopMemoryContext, n + 1);
	memcpy(s, r->p + r->off, n);
	s[n] = '\0';
	r->off += n;
	if (strlen(s) != n)
		ereport(FATAL, (errmsg("pggo: %s: setting %s: the %s contains a NUL byte",
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
	ereport(FATAL, (errmsg("pggo: %s: setting \"%s\": unknown context %u", pggo_loader_path, name, c)));
	return PGC_USERSET;			/* not reached */
}

/*
 * Parse the settings part of the init helper's reply (the rest of it after
 * the regions) and define each setting, then reserve every prefix used so
 * that a misspelt "prefix.name" in postgresql.conf is reported. Runs in the
 * postmaster, in _PG_init.
 */
void
pggo_guc_define_settings(const char *p, size_t len)
{
	Reader		r = {.p = p,.len = len,.off = 0,.what = "count"};
	uint32		n;
	char	  **prefixes;
	int			nprefixes = 0;

	/* An extension built before settings existed sends nothing here. */
	if (len == 0)
		return;
	n = read_u32(&r);
	if (n > PGGO_MAX_SETTINGS)
		ereport(FATAL, (errmsg("pggo: %s: %u settings declared; at most %d are supported",
							   pggo_loader_path, n, PGGO_MAX_SETTINGS)));
	prefixes = MemoryContextAllocZero(TopMemoryContext, sizeof(char *) * Max(n, 1));
	for (uint32 i = 0; i < n; i++)
	{
		char		num[32];
		uint8		kind,
					ctx;
		char	   *name,
				   *desc,
				   *dot;
		GucContext	context;
		bool		known = false;

		snprintf(num, sizeof(num), "%u", i + 1);
		r.what = num;
		kind = read_u8(&r);
		ctx = read_u8(&r);
		name = read_str(&r, PGGO_SETTING_NAMELEN, "name");
		r.what = psprintf("\"%s\"", name);
		if (!valid_name(name))
			ereport(FATAL,
					(errmsg("pggo: %s: setting \"%s\": not a valid custom setting name", pggo_loader_path, name),
					 errhint("Use PREFIX.NAME: letters, digits, '_' and '$' in each part, not starting with a digit.")));
		desc = read_str(&r, 10000, "description");
		context = guc_context(ctx, name);
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
						ereport(FATAL, (errmsg("pggo: %s: setting \"%s\": the default %d is not within [%d, %d]",
											   pggo_loader_path, name, def, min, max)));
					*var = def;
					DefineCustomIntVariable(name, desc, NULL, var, def, min, max, context, 0, NULL, NULL, NULL);
					break;
				}
			case PGGO_GUC_BOOL:
				{
					uint8		def = read_u8(&r);
					bool	   *var = MemoryContextAlloc(TopMemoryContext, sizeof(bool));

					if (def > 1)
						ereport(FATAL, (errmsg("pggo: %s: setting \"%s\": bad boolean default %u",
											   pggo_loader_path, name, def)));
					*var = def;
					DefineCustomBoolVariable(name, desc, NULL, var, def, context, 0, NULL, NULL, NULL);
					break;
				}
			case PGGO_GUC_STRING:
				{
					char	   *def = read_str(&r, 1 << 20, "default");
					char	  **var = MemoryContextAllocZero(TopMemoryContext, sizeof(char *));

					DefineCustomStringVariable(name, desc, NULL, var, def, context, 0, NULL, NULL, NULL);
					break;
				}
			case PGGO_GUC_ENUM:
				{
					int32		def = (int32) read_u32(&r);
					uint32		nopts = read_u32(&r);
					struct config_enum_entry *opts;
					int		   *var = MemoryContextAlloc(TopMemoryContext, sizeof(int));

					if (nopts == 0 || nopts > PGGO_MAX_ENUM_OPTIONS)
						ereport(FATAL, (errmsg("pggo: %s: setting \"%s\": %u options; an enum has 1 to %d",
											   pggo_loader_path, name, nopts, PGGO_MAX_ENUM_OPTIONS)));
					if (def < 0 || (uint32) def >= nopts)
						ereport(FATAL, (errmsg("pggo: %s: setting \"%s\": the default is not one of the options",
											   pggo_loader_path, name)));
					/* PostgreSQL reads the array up to an entry without a name. */
					opts = MemoryContextAllocZero(TopMemoryContext, sizeof(*opts) * (nopts + 1));
					for (uint32 j = 0; j < nopts; j++)
					{
						opts[j].name = read_str(&r, 200, "option");
						opts[j].val = (int) j;
						if (opts[j].name[0] == '\0')
							ereport(FATAL, (errmsg("pggo: %s: setting \"%s\": an option is empty",
												   pggo_loader_path, name)));
						for (uint32 k = 0; k < j; k++)
							if (pg_strcasecmp(opts[k].name, opts[j].name) == 0)
								ereport(FATAL, (errmsg("pggo: %s: setting \"%s\": option \"%s\" is listed twice",
													   pggo_loader_path, name, opts[j].name)));
					}
					*var = def;
					DefineCustomEnumVariable(name, desc, NULL, var, def, opts, context, 0, NULL, NULL, NULL);
					break;
				}
			default:
				ereport(FATAL, (errmsg("pggo: %s: setting \"%s\": unknown kind %u", pggo_loader_path, name, kind)));
		}
		dot = strchr(name, '.');
		*dot = '\0';
		for (int j = 0; j < nprefixes; j++)
			if (strcmp(prefixes[j], name) == 0)
				known = true;
		if (!known)
			prefixes[nprefixes++] = pstrdup(name);
		*dot = '.';
	}
	if (r.off != len)
		ereport(FATAL, (errmsg("pggo: the init helper of \"%s\" sent a malformed reply: %zu bytes after the settings",
							   pggo_loader_path, len - r.off)));

	/*
	 * After the definitions: a placeholder left with a reserved prefix is a
	 * name no declaration matches, which PostgreSQL then reports and drops.
	 */
	for (int j = 0; j < nprefixes; j++)
		MarkGUCPrefixReserved(prefixes[j]);
}

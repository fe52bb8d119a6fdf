package sqldriver

import (
	"database/sql/driver"
	"io"
	"reflect"
	"strconv"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/spi"
)

// rows streams a result through spi.Rows (a cursor, a batch at a time).
type rows struct {
	r     *spi.Rows
	types []spi.ColumnType
}

var (
	_ driver.Rows                           = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
)

func newRows(r *spi.Rows) *rows { return &rows{r: r, types: r.ColumnTypes()} }

func (r *rows) Columns() []string { return r.r.Columns() }

// Close releases the cursor. database/sql closes rows from another goroutine
// when their context is cancelled or their Tx ends first; the cursor is then
// closed at the driver's next call on the worker's goroutine (or with the
// transaction, whichever comes first).
func (r *rows) Close() error {
	if onWorkerThread() {
		r.r.Close()
		return nil
	}
	later(r.r.Close)
	return nil
}

func (r *rows) Next(dest []driver.Value) error {
	if !r.r.Next() {
		if err := r.r.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if err := r.r.DriverValues(dest); err != nil {
		return err
	}
	for i, c := range r.types {
		// pgx's stdlib driver hands out json, jsonb and xml as []byte, so
		// code scanning them into json.RawMessage works.
		if c.OID == oidJSON || c.OID == oidJSONB || c.OID == oidXML {
			if s, ok := dest[i].(string); ok {
				dest[i] = []byte(s)
			}
		}
	}
	return nil
}

// ColumnTypeDatabaseTypeName names a column's type as pgx's stdlib driver
// does: the upper-case pg_type name ("INT8", "_TEXT" for text[]), or the OID
// in decimal for types not in the table (enums, composites, extensions').
func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	oid := r.types[i].OID
	if n, ok := typeNames[oid]; ok {
		return n
	}
	return strconv.FormatUint(uint64(oid), 10)
}

// ColumnTypeScanType is the Go type to scan a column into, as pgx's stdlib
// driver reports it.
func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	switch r.types[i].OID {
	case oidFloat8, oidNumeric:
		return reflect.TypeFor[float64]()
	case oidFloat4:
		return reflect.TypeFor[float32]()
	case oidInt8:
		return reflect.TypeFor[int64]()
	case oidInt4:
		return reflect.TypeFor[int32]()
	case oidInt2:
		return reflect.TypeFor[int16]()
	case oidBool:
		return reflect.TypeFor[bool]()
	case oidDate, oidTimestamp, oidTimestampTZ:
		return reflect.TypeFor[time.Time]()
	case oidBytea:
		return reflect.TypeFor[[]byte]()
	}
	return reflect.TypeFor[string]()
}

// typeNames are the built-in types' pg_type names, upper case. Built-in
// OIDs never change between PostgreSQL versions.
var typeNames = map[pggo.Oid]string{
	16: "BOOL", 17: "BYTEA", 18: "CHAR", 19: "NAME", 20: "INT8", 21: "INT2",
	22: "INT2VECTOR", 23: "INT4", 24: "REGPROC", 25: "TEXT", 26: "OID",
	27: "TID", 28: "XID", 29: "CID", 30: "OIDVECTOR", 114: "JSON", 142: "XML",
	600: "POINT", 601: "LSEG", 602: "PATH", 603: "BOX", 604: "POLYGON",
	628: "LINE", 650: "CIDR", 700: "FLOAT4", 701: "FLOAT8", 705: "UNKNOWN",
	718: "CIRCLE", 774: "MACADDR8", 790: "MONEY", 829: "MACADDR", 869: "INET",
	1033: "ACLITEM", 1042: "BPCHAR", 1043: "VARCHAR", 1082: "DATE",
	1083: "TIME", 1114: "TIMESTAMP", 1184: "TIMESTAMPTZ", 1186: "INTERVAL",
	1266: "TIMETZ", 1560: "BIT", 1562: "VARBIT", 1700: "NUMERIC",
	1790: "REFCURSOR", 2202: "REGPROCEDURE", 2203: "REGOPER",
	2204: "REGOPERATOR", 2205: "REGCLASS", 2206: "REGTYPE", 2249: "RECORD",
	2275: "CSTRING", 2278: "VOID", 2950: "UUID", 3220: "PG_LSN",
	3614: "TSVECTOR", 3615: "TSQUERY", 3734: "REGCONFIG", 3769: "REGDICTIONARY",
	3802: "JSONB", 4072: "JSONPATH", 4089: "REGNAMESPACE", 4096: "REGROLE",
	5069: "XID8", 3904: "INT4RANGE", 3906: "NUMRANGE", 3908: "TSRANGE",
	3910: "TSTZRANGE", 3912: "DATERANGE", 3926: "INT8RANGE",
	// Arrays are named after their element type with a leading underscore.
	1000: "_BOOL", 1001: "_BYTEA", 1002: "_CHAR", 1003: "_NAME", 1005: "_INT2",
	1007: "_INT4", 1009: "_TEXT", 1014: "_BPCHAR", 1015: "_VARCHAR",
	1016: "_INT8", 1021: "_FLOAT4", 1022: "_FLOAT8", 1028: "_OID",
	1115: "_TIMESTAMP", 1182: "_DATE", 1183: "_TIME", 1185: "_TIMESTAMPTZ",
	1187: "_INTERVAL", 1231: "_NUMERIC", 1270: "_TIMETZ", 199: "_JSON",
	143: "_XML", 2951: "_UUID", 3807: "_JSONB", 1041: "_INET", 651: "_CIDR",
	2287: "_RECORD", 3905: "_INT4RANGE", 3927: "_INT8RANGE",
}

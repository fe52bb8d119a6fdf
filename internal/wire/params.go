package wire

import (
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/pggo/pggo"
)

// Cell and parameter kinds: the first byte of every record, telling the reader
// which payload follows (see the package documentation).
const (
	KindNull    = 0 // no payload
	KindInt64   = 1 // 8-byte little-endian two's complement integer
	KindFloat64 = 2 // 8-byte little-endian IEEE 754 double
	KindText    = 3 // u32 length + bytes, in the server encoding
	KindBinary  = 4 // u32 length + raw bytes (bytea)
	KindTime    = 5 // i64 microseconds since 2000-01-01 UTC, i32 zone offset in seconds (parameters only)
)

// PostgreSQL type OIDs that the wire format treats specially or that error
// messages name. They are fixed in PostgreSQL's catalog (pg_type.dat) and never
// change between server versions.
const (
	TypeBool        = 16
	TypeBytea       = 17
	TypeChar        = 18
	TypeName        = 19
	TypeInt8        = 20
	TypeInt2        = 21
	TypeInt4        = 23
	TypeText        = 25
	TypeOid         = 26
	TypeJSON        = 114
	TypeXML         = 142
	TypeFloat4      = 700
	TypeFloat8      = 701
	TypeUnknown     = 705
	TypeBPChar      = 1042
	TypeVarchar     = 1043
	TypeDate        = 1082
	TypeTime        = 1083
	TypeTimestamp   = 1114
	TypeTimestampTZ = 1184
	TypeNumeric     = 1700
	TypeUUID        = 2950
	TypeJSONB       = 3802
)

// pgEpochUnix is 2000-01-01 00:00:00 UTC in Unix seconds: PostgreSQL counts
// dates and timestamps from there.
const pgEpochUnix = 946684800

// PostgreSQL's valid timestamp range in seconds since its epoch, as
// MIN_TIMESTAMP and END_TIMESTAMP in datatype/timestamp.h: 4714-11-24 00:00:00
// BC (inclusive) to 294277-01-01 00:00:00 (exclusive). Both are whole seconds,
// so checking seconds is exact.
const (
	minTimestampSec = -211813488000
	endTimestampSec = 9223371331200
)

// maxValuerDepth bounds how many driver.Valuer results may themselves be
// Valuers, so that a Value method returning its receiver is an error rather
// than an endless loop.
const maxValuerDepth = 8

var valuerType = reflect.TypeFor[driver.Valuer]()
var timeType = reflect.TypeFor[time.Time]()

// EncodeParams encodes SPI statement arguments in the parameter format of the
// package documentation, one record per argument, so the C side can build all
// Datums from one buffer. Argument i is $(i+1) in the statement and in errors.
//
// Besides the types the package documentation lists, it accepts int8 (as
// int2), uint8 and uint16 (as int4), uint32 (as int8), uint and uint64 (as int8,
// rejecting values above math.MaxInt64), pointers to any supported type (nil
// is NULL), driver.Valuer (its Value is encoded), and named types whose
// underlying type is supported (type ID int64). A nil []byte is NULL.
//
// time.Time is sent as microseconds since 2000-01-01 UTC rounded toward the
// earlier instant (floor), so 1.9µs before the epoch becomes -2µs, never -1µs:
// truncation is consistent on both sides of the epoch. Times outside
// PostgreSQL's timestamp range (4714 BC to 294276 AD) are an error rather than
// an accidental infinity.
func EncodeParams(args []any) ([]byte, error) {
	if len(args) == 0 {
		return nil, nil
	}
	return AppendParams(make([]byte, 0, 16*len(args)), args)
}

// AppendParams is EncodeParams appending to buf: several rows of arguments
// in one buffer, for a batch.
func AppendParams(buf []byte, args []any) ([]byte, error) {
	var err error
	for i, a := range args {
		buf, err = appendParam(buf, a, i+1, 0)
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func appendInt(buf []byte, oid uint32, v int64) []byte {
	buf = appendHeader(buf, KindInt64, oid)
	return binary.LittleEndian.AppendUint64(buf, uint64(v))
}

func appendFloat(buf []byte, oid uint32, v float64) []byte {
	buf = appendHeader(buf, KindFloat64, oid)
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
}

func appendHeader(buf []byte, kind byte, oid uint32) []byte {
	buf = append(buf, kind)
	return binary.LittleEndian.AppendUint32(buf, oid)
}

func appendBool(buf []byte, v bool) []byte {
	var i int64
	if v {
		i = 1
	}
	return appendInt(buf, TypeBool, i)
}

// appendParam appends one parameter record for a; pos is its 1-based position
// for error messages and depth counts nested driver.Valuer calls.
func appendParam(buf []byte, a any, pos, depth int) ([]byte, error) {
	// Exact types first: no reflection for the common cases.
	switch v := a.(type) {
	case nil:
		return appendHeader(buf, KindNull, 0), nil
	case int:
		return appendInt(buf, TypeInt8, int64(v)), nil
	case int8:
		return appendInt(buf, TypeInt2, int64(v)), nil
	case int16:
		return appendInt(buf, TypeInt2, int64(v)), nil
	case int32:
		return appendInt(buf, TypeInt4, int64(v)), nil
	case int64:
		return appendInt(buf, TypeInt8, v), nil
	case uint8:
		return appendInt(buf, TypeInt4, int64(v)), nil
	case uint16:
		return appendInt(buf, TypeInt4, int64(v)), nil
	case uint32:
		return appendInt(buf, TypeInt8, int64(v)), nil
	case uint:
		return appendUint(buf, uint64(v), pos, a)
	case uint64:
		return appendUint(buf, v, pos, a)
	case float32:
		return appendFloat(buf, TypeFloat4, float64(v)), nil
	case float64:
		return appendFloat(buf, TypeFloat8, v), nil
	case bool:
		return appendBool(buf, v), nil
	case string:
		return appendString(buf, v, pos)
	case []byte:
		return appendBytes(buf, v, pos)
	case time.Time:
		return appendTime(buf, v, pos)
	case time.Duration:
		// An interval, not the int64 it is made of.
		b, _, err := appendLongTail(buf, v, pos)
		return b, err
	case *int64:
		if v == nil {
			return appendHeader(buf, KindNull, 0), nil
		}
		return appendInt(buf, TypeInt8, *v), nil
	case *string:
		if v == nil {
			return appendHeader(buf, KindNull, 0), nil
		}
		return appendString(buf, *v, pos)
	case driver.Valuer:
		return appendValuer(buf, v, pos, depth)
	}
	return appendReflect(buf, a, pos, depth)
}

func appendUint(buf []byte, v uint64, pos int, orig any) ([]byte, error) {
	if v > math.MaxInt64 {
		return nil, fmt.Errorf("spi: parameter $%d: %T value %d is out of range for bigint", pos, orig, v)
	}
	return appendInt(buf, TypeInt8, int64(v)), nil
}

func appendString(buf []byte, s string, pos int) ([]byte, error) {
	// The C side hands text to input functions as a C string, and PostgreSQL's
	// text types cannot hold NUL anyway: fail here with a clear message.
	if strings.IndexByte(s, 0) >= 0 {
		// The SQLSTATE PostgreSQL gives a NUL in text input.
		return nil, &pggo.Error{Severity: "ERROR", SQLState: "22021",
			Message: fmt.Sprintf("spi: parameter $%d: string contains a NUL byte, which PostgreSQL text cannot store", pos)}
	}
	if uint64(len(s)) > math.MaxUint32 {
		return nil, fmt.Errorf("spi: parameter $%d: string of %d bytes is too long", pos, len(s))
	}
	buf = appendHeader(buf, KindText, 0)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(s)))
	return append(buf, s...), nil
}

func appendBytes(buf []byte, b []byte, pos int) ([]byte, error) {
	if b == nil {
		return appendHeader(buf, KindNull, 0), nil
	}
	if uint64(len(b)) > math.MaxUint32 {
		return nil, fmt.Errorf("spi: parameter $%d: []byte of %d bytes is too long", pos, len(b))
	}
	buf = appendHeader(buf, KindBinary, TypeBytea)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(b)))
	return append(buf, b...), nil
}

func appendTime(buf []byte, t time.Time, pos int) ([]byte, error) {
	us, ok := timeToMicros(t)
	if !ok {
		return nil, fmt.Errorf("spi: parameter $%d: time %s is outside PostgreSQL's timestamp range (4714 BC to 294276 AD)", pos, t)
	}
	// The instant and the offset of its zone: the statement's type decides
	// which of the two matters (see the package documentation).
	_, off := t.Zone()
	buf = appendHeader(buf, KindTime, 0)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(us))
	return binary.LittleEndian.AppendUint32(buf, uint32(int32(off))), nil
}

// timeToMicros converts t to PostgreSQL's timestamp representation,
// microseconds since 2000-01-01 UTC, flooring sub-microsecond parts. It works
// from Unix seconds rather than time.Sub, whose Duration overflows beyond
// about 292 years. ok is false outside PostgreSQL's valid range.
func timeToMicros(t time.Time) (us int64, ok bool) {
	// Compare instants first: t.Unix() itself wraps for times near Go's limits.
	if t.Before(minTimestamp) || !t.Before(endTimestamp) {
		return 0, false
	}
	sec := t.Unix() - pgEpochUnix
	// Nanosecond is in [0, 1e9), so integer division floors.
	return sec*1_000_000 + int64(t.Nanosecond()/1000), true
}

var (
	minTimestamp = time.Unix(pgEpochUnix+minTimestampSec, 0)
	endTimestamp = time.Unix(pgEpochUnix+endTimestampSec, 0)
)

func appendValuer(buf []byte, v driver.Valuer, pos, depth int) ([]byte, error) {
	// As database/sql does: a nil pointer whose element type has a value-receiver
	// Value method would panic when called, so it is NULL.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() && rv.Type().Elem().Implements(valuerType) {
		return appendHeader(buf, KindNull, 0), nil
	}
	if depth >= maxValuerDepth {
		return nil, fmt.Errorf("spi: parameter $%d: driver.Valuer %T: Value results nest more than %d deep", pos, v, maxValuerDepth)
	}
	dv, err := v.Value()
	if err != nil {
		return nil, fmt.Errorf("spi: parameter $%d: %T.Value: %w", pos, v, err)
	}
	return appendParam(buf, dv, pos, depth+1)
}

// appendReflect handles pointers and named types (type ID int64) by their
// underlying kind.
func appendReflect(buf []byte, a any, pos, depth int) ([]byte, error) {
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return appendHeader(buf, KindNull, 0), nil
		}
		if depth >= maxValuerDepth {
			break
		}
		return appendParam(buf, rv.Elem().Interface(), pos, depth+1)
	case reflect.Int, reflect.Int64:
		return appendInt(buf, TypeInt8, rv.Int()), nil
	case reflect.Int8, reflect.Int16:
		return appendInt(buf, TypeInt2, rv.Int()), nil
	case reflect.Int32:
		return appendInt(buf, TypeInt4, rv.Int()), nil
	case reflect.Uint8, reflect.Uint16:
		return appendInt(buf, TypeInt4, int64(rv.Uint())), nil
	case reflect.Uint32:
		return appendInt(buf, TypeInt8, int64(rv.Uint())), nil
	case reflect.Uint, reflect.Uint64:
		return appendUint(buf, rv.Uint(), pos, a)
	case reflect.Float32:
		return appendFloat(buf, TypeFloat4, rv.Float()), nil
	case reflect.Float64:
		return appendFloat(buf, TypeFloat8, rv.Float()), nil
	case reflect.Bool:
		return appendBool(buf, rv.Bool()), nil
	case reflect.String:
		return appendString(buf, rv.String(), pos)
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			if rv.IsNil() {
				return appendHeader(buf, KindNull, 0), nil
			}
			return appendBytes(buf, rv.Bytes(), pos)
		}
	case reflect.Struct:
		// type MyTime time.Time
		if rv.Type().ConvertibleTo(timeType) {
			return appendTime(buf, rv.Convert(timeType).Interface().(time.Time), pos)
		}
	}
	// The long tail: slices (arrays), [16]byte (uuid), netip, pgtype's types...
	if b, ok, err := appendLongTail(buf, a, pos); ok {
		return b, err
	}
	return nil, fmt.Errorf("spi: parameter $%d: unsupported Go type %T", pos, a)
}

// AppendParamTypes appends the declared type OID of every record in params
// (a buffer from EncodeParams), 4 bytes each, to dst. With the SQL text it
// keys spi's plan cache: a plan is kept for the types it was planned with.
// A malformed buffer appends what it can; the loader rejects the buffer.
func AppendParamTypes(dst, params []byte) []byte {
	for off := 0; off+5 <= len(params); {
		kind := params[off]
		dst = append(dst, params[off+1:off+5]...)
		off += 5
		switch kind {
		case KindInt64, KindFloat64:
			off += 8
		case KindTime:
			off += 12
		case KindText, KindBinary:
			if off+4 > len(params) {
				return dst
			}
			off += 4 + int(binary.LittleEndian.Uint32(params[off:]))
		}
	}
	return dst
}

package wire

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// typeNames are the names PostgreSQL's format_type gives the types pggo knows,
// so that errors read like the server's own ("column is of type integer").
var typeNames = map[uint32]string{
	TypeBool:        "boolean",
	TypeBytea:       "bytea",
	TypeChar:        `"char"`,
	TypeName:        "name",
	TypeInt8:        "bigint",
	TypeInt2:        "smallint",
	TypeInt4:        "integer",
	TypeText:        "text",
	TypeOid:         "oid",
	TypeJSON:        "json",
	TypeXML:         "xml",
	TypeFloat4:      "real",
	TypeFloat8:      "double precision",
	TypeUnknown:     "unknown",
	TypeBPChar:      "character",
	TypeVarchar:     "character varying",
	TypeDate:        "date",
	TypeTime:        "time without time zone",
	TypeTimestamp:   "timestamp without time zone",
	TypeTimestampTZ: "timestamp with time zone",
	TypeNumeric:     "numeric",
	TypeUUID:        "uuid",
	TypeJSONB:       "jsonb",
}

// FormatType returns PostgreSQL's name for the type with the given OID, for
// error messages; types outside the small built-in table are named by OID.
func FormatType(oid uint32) string {
	if n, ok := typeNames[oid]; ok {
		return n
	}
	return fmt.Sprintf("type with OID %d", oid)
}

// Special values as they arrive: timestamps use int64 extremes (doc.go); dates
// are DateADT, an int32, which the C side sign-extends, so their infinities
// arrive as the int32 extremes. Both spellings are accepted for both types.
func isPosInf(i int64) bool { return i == math.MaxInt64 || i == math.MaxInt32 }
func isNegInf(i int64) bool { return i == math.MinInt64 || i == math.MinInt32 }

const (
	usPerSec  = 1_000_000
	usPerDay  = 86_400 * usPerSec
	epochDays = pgEpochUnix / 86_400 // days from 1970-01-01 to 2000-01-01
)

// isInteger reports whether a KindInt64 cell of type oid is a number, as
// opposed to a bool or a date/time that merely travels as one.
func isInteger(oid uint32) bool {
	switch oid {
	case TypeBool, TypeDate, TypeTime, TypeTimestamp, TypeTimestampTZ:
		return false
	}
	return true
}

func isTimeType(oid uint32) bool {
	return oid == TypeDate || oid == TypeTimestamp || oid == TypeTimestampTZ
}

// timeOf converts a KindInt64 date or timestamp cell. inf is +1 or -1 for
// PostgreSQL's infinities (t is then zero); reason is non-empty if the value
// is outside what PostgreSQL can store.
func (v Value) timeOf() (t time.Time, inf int, reason string) {
	if v.Type == TypeDate {
		switch {
		case isPosInf(v.I):
			return time.Time{}, +1, ""
		case isNegInf(v.I):
			return time.Time{}, -1, ""
		}
		if v.I < math.MinInt32 || v.I > math.MaxInt32 {
			return time.Time{}, 0, fmt.Sprintf("date value %d out of range", v.I)
		}
		return time.Unix((v.I+epochDays)*86_400, 0).UTC(), 0, ""
	}
	switch v.I {
	case math.MaxInt64:
		return time.Time{}, +1, ""
	case math.MinInt64:
		return time.Time{}, -1, ""
	}
	// Floor division: -1µs is 1999-12-31 23:59:59.999999.
	sec, us := v.I/usPerSec, v.I%usPerSec
	if us < 0 {
		sec--
		us += usPerSec
	}
	return time.Unix(pgEpochUnix+sec, us*1000).UTC(), 0, ""
}

func infName(inf int) string {
	if inf > 0 {
		return "infinity"
	}
	return "-infinity"
}

// Natural converts the cell to the Go value that represents it most directly,
// for *any destinations and generic code:
//
//	NULL                        nil
//	boolean                     bool
//	smallint, integer, bigint   int16, int32, int64
//	oid                         uint32
//	real, double precision      float32, float64
//	date, timestamp[tz]         time.Time in UTC (timestamp: its wall clock, labelled UTC);
//	                            the strings "infinity" and "-infinity" for infinities
//	time                        string "15:04:05.999999"
//	bytea                       []byte
//	any other type              string (PostgreSQL's text output)
//
// Strings and byte slices are copies: they stay valid after the result
// buffer is released.
func (v Value) Natural() (any, error) {
	x, reason := v.natural()
	if reason != "" {
		return nil, fmt.Errorf("spi: %s", reason)
	}
	return x, nil
}

func (v Value) natural() (any, string) {
	if v.Kind == KindInt64 {
		switch v.Type {
		case TypeInt2:
			if v.I < math.MinInt16 || v.I > math.MaxInt16 {
				return nil, fmt.Sprintf("smallint value %d out of range", v.I)
			}
			return int16(v.I), ""
		case TypeInt4:
			if v.I < math.MinInt32 || v.I > math.MaxInt32 {
				return nil, fmt.Sprintf("integer value %d out of range", v.I)
			}
			return int32(v.I), ""
		case TypeOid:
			if v.I < 0 || v.I > math.MaxUint32 {
				return nil, fmt.Sprintf("oid value %d out of range", v.I)
			}
			return uint32(v.I), ""
		}
	}
	if v.Kind == KindFloat64 && v.Type == TypeFloat4 {
		return float32(v.F), ""
	}
	if v.Kind == KindText && longTail(v.Type) {
		x, err := naturalLongTail(v.Type, v.B)
		if err != nil {
			return nil, err.Error()
		}
		return x, ""
	}
	return v.driverValue()
}

// driverValue is the cell as database/sql's driver.Value types (int64,
// float64, bool, string, []byte, time.Time, nil): what sql.Scanner expects.
func (v Value) driverValue() (any, string) {
	switch v.Kind {
	case KindNull:
		return nil, ""
	case KindInt64:
		switch {
		case v.Type == TypeBool:
			return v.I != 0, ""
		case isTimeType(v.Type):
			t, inf, reason := v.timeOf()
			if reason != "" {
				return nil, reason
			}
			if inf != 0 {
				return infName(inf), ""
			}
			return t, ""
		case v.Type == TypeTime:
			b, reason := appendClock(nil, v.I)
			return string(b), reason
		}
		return v.I, ""
	case KindFloat64:
		return v.F, ""
	case KindText:
		return string(v.B), ""
	case KindBinary:
		return bytes.Clone(v.B), ""
	}
	return nil, fmt.Sprintf("invalid cell kind %d", v.Kind)
}

// appendText appends PostgreSQL's text output for a KindInt64 or KindFloat64
// cell (for text kinds the text is the cell itself).
func appendText(dst []byte, v Value) ([]byte, string) {
	switch v.Kind {
	case KindInt64:
		switch {
		case v.Type == TypeBool:
			if v.I != 0 {
				return append(dst, 't'), ""
			}
			return append(dst, 'f'), ""
		case isTimeType(v.Type):
			t, inf, reason := v.timeOf()
			if reason != "" {
				return dst, reason
			}
			if inf != 0 {
				return append(dst, infName(inf)...), ""
			}
			return appendTimestamp(dst, t, v.Type), ""
		case v.Type == TypeTime:
			return appendClock(dst, v.I)
		}
		return strconv.AppendInt(dst, v.I, 10), ""
	case KindFloat64:
		bits := 64
		if v.Type == TypeFloat4 {
			bits = 32
		}
		return appendFloat8(dst, v.F, bits), ""
	case KindText, KindBinary:
		return append(dst, v.B...), ""
	}
	return dst, fmt.Sprintf("invalid cell kind %d", v.Kind)
}

// appendFloat8 formats f as PostgreSQL 12+ does by default: the shortest
// digits that read back exactly (strconv's -1 precision), NaN and Infinity
// spelled as PostgreSQL spells them, and exponent notation only outside the
// range printf's %g would use with DBL_DIG (15) or FLT_DIG (6) digits, so
// 1234567 prints as "1234567" (not Go's "1.234567e+06") and 1e+20 as "1e+20".
func appendFloat8(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	maxExp := 15
	if bits == 32 {
		maxExp = 6
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, bits)
	exp := 0
	if i := bytes.LastIndexByte(e, 'e'); i >= 0 {
		exp, _ = strconv.Atoi(string(e[i+1:]))
	}
	if exp >= -4 && exp < maxExp {
		return strconv.AppendFloat(dst, f, 'f', -1, bits)
	}
	return append(dst, e...)
}

// appendTimestamp formats t as PostgreSQL's ISO DateStyle does: "2006-01-02"
// for dates, "2006-01-02 15:04:05.999999" for timestamps, with "+00" for
// timestamptz (values are UTC), and " BC" for years before 1 AD (Go's year 0
// is 1 BC).
func appendTimestamp(dst []byte, t time.Time, oid uint32) []byte {
	y, m, d := t.Date()
	bc := y <= 0
	if bc {
		y = 1 - y
	}
	dst = appendPad(dst, int64(y), 4)
	dst = append(dst, '-')
	dst = appendPad(dst, int64(m), 2)
	dst = append(dst, '-')
	dst = appendPad(dst, int64(d), 2)
	if oid != TypeDate {
		hh, mm, ss := t.Clock()
		dst = append(dst, ' ')
		dst = appendHMS(dst, int64(hh), int64(mm), int64(ss), int64(t.Nanosecond()/1000))
		if oid == TypeTimestampTZ {
			dst = append(dst, "+00"...)
		}
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

// appendClock formats a time-of-day cell (microseconds since midnight) as
// "15:04:05.999999". PostgreSQL allows 24:00:00, so that is accepted too.
func appendClock(dst []byte, us int64) ([]byte, string) {
	if us < 0 || us > usPerDay {
		return dst, fmt.Sprintf("time value %d out of range", us)
	}
	sec := us / usPerSec
	return appendHMS(dst, sec/3600, sec/60%60, sec%60, us%usPerSec), ""
}

func appendHMS(dst []byte, hh, mm, ss, us int64) []byte {
	dst = appendPad(dst, hh, 2)
	dst = append(dst, ':')
	dst = appendPad(dst, mm, 2)
	dst = append(dst, ':')
	dst = appendPad(dst, ss, 2)
	if us != 0 {
		// Six digits, then drop trailing zeros as PostgreSQL does.
		dst = append(dst, '.')
		dst = appendPad(dst, us, 6)
		for dst[len(dst)-1] == '0' {
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

// appendPad appends non-negative n with at least width digits.
func appendPad(dst []byte, n int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], n, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// scanState carries one Assign call: the cell, the column for messages, and
// the caller's destination (for messages too, even when a pointer-to-pointer
// destination is being filled through a freshly allocated inner pointer).
type scanState struct {
	dest  any
	v     Value
	col   Column
	idx   int
	depth int // pointer levels followed; bounded because type P *P is legal Go
}

// maxPointerDepth bounds how many pointer levels a destination may have.
const maxPointerDepth = 8

func (s *scanState) mismatch() error {
	return fmt.Errorf("spi: cannot scan column %d (%q) of type %s into %T", s.idx+1, s.col.Name, FormatType(s.v.Type), s.dest)
}

func (s *scanState) fail(format string, args ...any) error {
	return fmt.Errorf("spi: cannot scan column %d (%q) of type %s into %T: %s", s.idx+1, s.col.Name, FormatType(s.v.Type), s.dest, fmt.Sprintf(format, args...))
}

func (s *scanState) wrap(err error) error {
	return fmt.Errorf("spi: cannot scan column %d (%q) of type %s into %T: %w", s.idx+1, s.col.Name, FormatType(s.v.Type), s.dest, err)
}

func (s *scanState) null() error {
	return fmt.Errorf("spi: column %d (%q) is NULL; scan into a pointer such as **T, *any or a sql.Null* type", s.idx+1, s.col.Name)
}

func (s *scanState) nilDest() error {
	return fmt.Errorf("spi: cannot scan column %d (%q) into a nil %T", s.idx+1, s.col.Name, s.dest)
}

// Assign stores cell v of column col (colIndex is 0-based; messages count
// from 1, as PostgreSQL does) in dest, which must be a non-nil pointer:
//
//   - *any: Natural.
//   - *string: text verbatim, bytea's raw bytes, anything else as PostgreSQL
//     prints it (decimal integers, "t"/"f", "NaN"/"Infinity",
//     "2006-01-02 15:04:05.999999+00", ...).
//   - *[]byte: a copy of the bytes (the text of non-bytea values); NULL sets
//     nil, as database/sql does, while an empty value is non-nil.
//   - *int, *int8 ... *uint64: integers, or text parsed as a decimal integer
//     (numeric "42.00" included); out-of-range values are an error, never
//     truncated.
//   - *float32, *float64: floats, integers that convert exactly, or parsed
//     text.
//   - *bool: boolean, or the text "t", "true", "f", "false".
//   - *time.Time: date and timestamps, in UTC; infinities are an error.
//   - sql.Scanner: Scan with int64, float64, bool, string, []byte, time.Time
//     or nil.
//   - a pointer to a pointer to any of these: NULL sets nil, anything else a
//     newly allocated value.
//   - pointers to named types with these underlying types (type ID int64).
//
// NULL into any other destination is an error, as is a value that does not
// fit the destination.
func Assign(dest any, v Value, col Column, colIndex int) error {
	s := scanState{dest: dest, v: v, col: col, idx: colIndex}
	return s.assign(dest)
}

func (s *scanState) assign(dest any) error {
	switch d := dest.(type) {
	case nil:
		return fmt.Errorf("spi: cannot scan column %d (%q) into a nil destination", s.idx+1, s.col.Name)
	case *any:
		if d == nil {
			return s.nilDest()
		}
		x, reason := s.v.natural()
		if reason != "" {
			return s.fail("%s", reason)
		}
		*d = x
		return nil
	case *string:
		if d == nil {
			return s.nilDest()
		}
		x, err := s.toString()
		if err != nil {
			return err
		}
		*d = x
		return nil
	case *[]byte:
		if d == nil {
			return s.nilDest()
		}
		x, err := s.toBytes()
		if err != nil {
			return err
		}
		*d = x
		return nil
	case *int:
		return assignSigned(s, d, strconv.IntSize)
	case *int8:
		return assignSigned(s, d, 8)
	case *int16:
		return assignSigned(s, d, 16)
	case *int32:
		return assignSigned(s, d, 32)
	case *int64:
		return assignSigned(s, d, 64)
	case *uint:
		return assignUnsigned(s, d, strconv.IntSize)
	case *uint8:
		return assignUnsigned(s, d, 8)
	case *uint16:
		return assignUnsigned(s, d, 16)
	case *uint32:
		return assignUnsigned(s, d, 32)
	case *uint64:
		return assignUnsigned(s, d, 64)
	case *float32:
		if d == nil {
			return s.nilDest()
		}
		x, err := s.toFloat(32)
		if err != nil {
			return err
		}
		*d = float32(x)
		return nil
	case *float64:
		if d == nil {
			return s.nilDest()
		}
		x, err := s.toFloat(64)
		if err != nil {
			return err
		}
		*d = x
		return nil
	case *bool:
		if d == nil {
			return s.nilDest()
		}
		x, err := s.toBool()
		if err != nil {
			return err
		}
		*d = x
		return nil
	case *time.Time:
		if d == nil {
			return s.nilDest()
		}
		x, err := s.toTime()
		if err != nil {
			return err
		}
		*d = x
		return nil
	case sql.Scanner:
		if rv := reflect.ValueOf(d); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return s.nilDest()
		}
		x, reason := s.v.driverValue()
		if reason != "" {
			return s.fail("%s", reason)
		}
		if err := d.Scan(x); err != nil {
			return s.wrap(err)
		}
		return nil
	}
	return s.assignReflect(dest)
}

func assignSigned[T int | int8 | int16 | int32 | int64](s *scanState, d *T, bits int) error {
	if d == nil {
		return s.nilDest()
	}
	x, err := s.toInt(bits)
	if err != nil {
		return err
	}
	*d = T(x)
	return nil
}

func assignUnsigned[T uint | uint8 | uint16 | uint32 | uint64](s *scanState, d *T, bits int) error {
	if d == nil {
		return s.nilDest()
	}
	x, err := s.toUint(bits)
	if err != nil {
		return err
	}
	*d = T(x)
	return nil
}

// assignReflect handles what the fast type switch does not: pointers to
// pointers and pointers to named types.
func (s *scanState) assignReflect(dest any) error {
	rv := reflect.ValueOf(dest)
	if rv.Kind() != reflect.Pointer {
		return s.fail("destination is not a pointer")
	}
	if rv.IsNil() {
		return s.nilDest()
	}
	e := rv.Elem()
	switch e.Kind() {
	case reflect.Pointer:
		if s.v.Kind == KindNull {
			e.SetZero()
			return nil
		}
		if s.depth++; s.depth > maxPointerDepth {
			return s.fail("more than %d levels of pointers", maxPointerDepth)
		}
		nv := reflect.New(e.Type().Elem())
		if err := s.assign(nv.Interface()); err != nil {
			return err
		}
		e.Set(nv)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, err := s.toInt(e.Type().Bits())
		if err != nil {
			return err
		}
		e.SetInt(x)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x, err := s.toUint(e.Type().Bits())
		if err != nil {
			return err
		}
		e.SetUint(x)
		return nil
	case reflect.Float32, reflect.Float64:
		x, err := s.toFloat(e.Type().Bits())
		if err != nil {
			return err
		}
		e.SetFloat(x)
		return nil
	case reflect.Bool:
		x, err := s.toBool()
		if err != nil {
			return err
		}
		e.SetBool(x)
		return nil
	case reflect.String:
		x, err := s.toString()
		if err != nil {
			return err
		}
		e.SetString(x)
		return nil
	case reflect.Slice:
		if e.Type().Elem().Kind() != reflect.Uint8 {
			break
		}
		x, err := s.toBytes()
		if err != nil {
			return err
		}
		if x == nil {
			e.SetZero()
		} else {
			e.SetBytes(x)
		}
		return nil
	case reflect.Struct:
		if !timeType.ConvertibleTo(e.Type()) {
			break
		}
		x, err := s.toTime()
		if err != nil {
			return err
		}
		e.Set(reflect.ValueOf(x).Convert(e.Type()))
		return nil
	case reflect.Interface:
		// *fmt.Stringer and the like: Natural, if its type fits.
		x, reason := s.v.natural()
		if reason != "" {
			return s.fail("%s", reason)
		}
		if x == nil {
			e.SetZero()
			return nil
		}
		if xv := reflect.ValueOf(x); xv.Type().AssignableTo(e.Type()) {
			e.Set(xv)
			return nil
		}
	}
	// The long tail: arrays into slices, uuid into [16]byte, numeric into
	// pgtype.Numeric, json into structs or maps, ...
	if s.v.Kind == KindText && longTail(s.v.Type) {
		if err := scanLongTail(s.v.Type, s.v.B, dest); err != nil {
			return s.wrap(err)
		}
		return nil
	}
	return s.mismatch()
}

// intText returns the text of a KindText cell ready for integer parsing:
// numeric's text output carries its scale ("42.00"), so an all-zero fraction
// is dropped; any other fraction is left for the parser to reject.
func (s *scanState) intText() string {
	b := s.v.B
	if s.v.Type == TypeNumeric {
		if i := bytes.IndexByte(b, '.'); i >= 0 && len(bytes.Trim(b[i+1:], "0")) == 0 {
			b = b[:i]
		}
	}
	return string(b)
}

func (s *scanState) toInt(bits int) (int64, error) {
	var x int64
	switch {
	case s.v.Kind == KindNull:
		return 0, s.null()
	case s.v.Kind == KindInt64 && isInteger(s.v.Type):
		x = s.v.I
	case s.v.Kind == KindText:
		n, err := strconv.ParseInt(s.intText(), 10, 64)
		if err != nil {
			return 0, s.wrap(err)
		}
		x = n
	default:
		return 0, s.mismatch()
	}
	if bits < 64 && (x < -1<<(bits-1) || x > 1<<(bits-1)-1) {
		return 0, s.fail("value %d out of range", x)
	}
	return x, nil
}

func (s *scanState) toUint(bits int) (uint64, error) {
	var x uint64
	switch {
	case s.v.Kind == KindNull:
		return 0, s.null()
	case s.v.Kind == KindInt64 && isInteger(s.v.Type):
		if s.v.I < 0 {
			return 0, s.fail("value %d out of range", s.v.I)
		}
		x = uint64(s.v.I)
	case s.v.Kind == KindText:
		t := s.intText()
		n, err := strconv.ParseUint(t, 10, 64)
		if err != nil {
			if _, ierr := strconv.ParseInt(t, 10, 64); ierr == nil {
				return 0, s.fail("value %s out of range", t) // negative
			}
			return 0, s.wrap(err)
		}
		x = n
	default:
		return 0, s.mismatch()
	}
	if bits < 64 && x > 1<<bits-1 {
		return 0, s.fail("value %d out of range", x)
	}
	return x, nil
}

// toFloat returns the cell as a float64 that is exactly representable with
// the given bits (32 or 64).
func (s *scanState) toFloat(bits int) (float64, error) {
	switch {
	case s.v.Kind == KindNull:
		return 0, s.null()
	case s.v.Kind == KindFloat64:
		x := s.v.F
		if bits == 32 {
			// Rounding to float32 precision is what asking for a float32
			// means; overflowing to infinity is not.
			f := float64(float32(x))
			if math.IsInf(f, 0) && !math.IsInf(x, 0) {
				return 0, s.fail("value %g out of range", x)
			}
			x = f
		}
		return x, nil
	case s.v.Kind == KindInt64 && isInteger(s.v.Type):
		i := s.v.I
		f := float64(i)
		if bits == 32 {
			f = float64(float32(i))
		}
		// float64(i) may round; converting back detects it. 2^63 itself
		// (MaxInt64 rounded up) has no int64, hence the bound check first.
		if f >= 0x1p63 || int64(f) != i {
			return 0, s.fail("value %d cannot be represented exactly as float%d", i, bits)
		}
		return f, nil
	case s.v.Kind == KindText:
		x, err := strconv.ParseFloat(string(s.v.B), bits)
		if err != nil {
			return 0, s.wrap(err)
		}
		return x, nil
	}
	return 0, s.mismatch()
}

func (s *scanState) toBool() (bool, error) {
	switch {
	case s.v.Kind == KindNull:
		return false, s.null()
	case s.v.Kind == KindInt64 && s.v.Type == TypeBool:
		return s.v.I != 0, nil
	case s.v.Kind == KindText:
		switch string(s.v.B) {
		case "t", "true":
			return true, nil
		case "f", "false":
			return false, nil
		}
		return false, s.fail("cannot parse %q as a boolean", s.v.B)
	}
	return false, s.mismatch()
}

func (s *scanState) toTime() (time.Time, error) {
	switch {
	case s.v.Kind == KindNull:
		return time.Time{}, s.null()
	case s.v.Kind == KindInt64 && isTimeType(s.v.Type):
		t, inf, reason := s.v.timeOf()
		if reason != "" {
			return time.Time{}, s.fail("%s", reason)
		}
		if inf != 0 {
			return time.Time{}, s.fail("value is %s, which time.Time cannot represent (scan into *string or *any)", infName(inf))
		}
		return t, nil
	}
	return time.Time{}, s.mismatch()
}

func (s *scanState) toString() (string, error) {
	switch s.v.Kind {
	case KindNull:
		return "", s.null()
	case KindText, KindBinary:
		return string(s.v.B), nil
	}
	var tmp [64]byte
	b, reason := appendText(tmp[:0], s.v)
	if reason != "" {
		return "", s.fail("%s", reason)
	}
	return string(b), nil
}

// toBytes returns a copy of the cell's bytes; NULL is a nil slice and an empty
// value a non-nil empty one, so the two stay distinguishable.
func (s *scanState) toBytes() ([]byte, error) {
	switch s.v.Kind {
	case KindNull:
		return nil, nil
	case KindText, KindBinary:
		return append([]byte{}, s.v.B...), nil
	}
	b, reason := appendText(nil, s.v)
	if reason != "" {
		return nil, s.fail("%s", reason)
	}
	return b, nil
}

// DriverValue returns the cell as a database/sql/driver.Value: nil, int64,
// float64, bool, string, []byte (copied) or time.Time.
func (v Value) DriverValue() (any, error) {
	d, reason := v.driverValue()
	if reason != "" {
		return nil, errors.New("spi: " + reason)
	}
	return d, nil
}

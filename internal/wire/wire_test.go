package wire

import (
	"math/big"

	"bytes"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5/pgtype"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Parameters

// param is one decoded parameter record; decodeParams is written from doc.go
// independently of the encoder, as the C side reads it.
type param struct {
	kind byte
	oid  uint32
	i    int64
	off  int32
	f    float64
	b    []byte
}

func decodeParams(t testing.TB, buf []byte) []param {
	t.Helper()
	var out []param
	for len(buf) > 0 {
		if len(buf) < 5 {
			t.Fatalf("truncated record header: % x", buf)
		}
		p := param{kind: buf[0], oid: binary.LittleEndian.Uint32(buf[1:5])}
		buf = buf[5:]
		switch p.kind {
		case KindNull:
		case KindInt64, KindFloat64:
			if len(buf) < 8 {
				t.Fatalf("truncated 8-byte payload")
			}
			u := binary.LittleEndian.Uint64(buf)
			p.i, p.f = int64(u), math.Float64frombits(u)
			if p.kind == KindInt64 {
				p.f = 0
			} else {
				p.i = 0
			}
			buf = buf[8:]
		case KindTime:
			if len(buf) < 12 {
				t.Fatalf("truncated time payload")
			}
			p.i = int64(binary.LittleEndian.Uint64(buf))
			p.off = int32(binary.LittleEndian.Uint32(buf[8:]))
			buf = buf[12:]
		case KindText, KindBinary:
			if len(buf) < 4 {
				t.Fatalf("truncated length")
			}
			n := binary.LittleEndian.Uint32(buf)
			buf = buf[4:]
			if uint32(len(buf)) < n {
				t.Fatalf("truncated bytes")
			}
			p.b = buf[:n]
			buf = buf[n:]
		default:
			t.Fatalf("bad kind %d", p.kind)
		}
		out = append(out, p)
	}
	return out
}

func (p param) equal(q param) bool {
	return p.kind == q.kind && p.oid == q.oid && p.i == q.i && p.off == q.off &&
		math.Float64bits(p.f) == math.Float64bits(q.f) && bytes.Equal(p.b, q.b) &&
		(p.b == nil) == (q.b == nil)
}

func pNull() param                   { return param{kind: KindNull} }
func pInt(oid uint32, i int64) param { return param{kind: KindInt64, oid: oid, i: i} }
func pFloat(oid uint32, f float64) param {
	return param{kind: KindFloat64, oid: oid, f: f}
}
func pText(s string) param { return param{kind: KindText, b: []byte(s)} }
func pBin(b []byte) param  { return param{kind: KindBinary, oid: TypeBytea, b: b} }
func pTime(us int64) param { return param{kind: KindTime, i: us} }
func pTimeOff(us int64, off int32) param {
	return param{kind: KindTime, i: us, off: off}
}
func ptr[T any](v T) *T { return &v }
func epochPlus(d time.Duration) time.Time {
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(d)
}

type (
	ID      int64
	Small   int16
	Name    string
	Flag    bool
	Raw     []byte
	MyTime  time.Time
	U64     uint64
	U8      uint8
	Ratio   float32
	AnyIntf interface{}
)

// valuer has a value receiver, so a nil *valuer must be NULL (not a panic).
type valuer struct{ v driver.Value }

func (v valuer) Value() (driver.Value, error) { return v.v, nil }

type failValuer struct{}

func (failValuer) Value() (driver.Value, error) { return nil, errors.New("boom") }

// loopValuer returns itself forever.
type loopValuer struct{}

func (l loopValuer) Value() (driver.Value, error) { return l, nil }

// ptrValuer has a pointer receiver and is called even when nil, as
// database/sql does.
type ptrValuer struct{}

func (p *ptrValuer) Value() (driver.Value, error) {
	if p == nil {
		return "nil receiver", nil
	}
	return "set", nil
}

func TestEncodeParams(t *testing.T) {
	var nilInt *int64
	var nilValuer *valuer
	var nilPtrValuer *ptrValuer
	tests := []struct {
		name string
		arg  any
		want param
		err  string
	}{
		{"nil", nil, pNull(), ""},
		{"int", int(-7), pInt(TypeInt8, -7), ""},
		{"int8", int8(-128), pInt(TypeInt2, -128), ""},
		{"int16", int16(math.MaxInt16), pInt(TypeInt2, math.MaxInt16), ""},
		{"int32", int32(math.MinInt32), pInt(TypeInt4, math.MinInt32), ""},
		{"int64 max", int64(math.MaxInt64), pInt(TypeInt8, math.MaxInt64), ""},
		{"int64 min", int64(math.MinInt64), pInt(TypeInt8, math.MinInt64), ""},
		{"uint8", uint8(255), pInt(TypeInt4, 255), ""},
		{"uint16", uint16(65535), pInt(TypeInt4, 65535), ""},
		{"uint32", uint32(math.MaxUint32), pInt(TypeInt8, math.MaxUint32), ""},
		{"uint", uint(42), pInt(TypeInt8, 42), ""},
		{"uint64 max int64", uint64(math.MaxInt64), pInt(TypeInt8, math.MaxInt64), ""},
		{"uint64 too big", uint64(math.MaxInt64 + 1), param{}, "spi: parameter $1: uint64 value 9223372036854775808 is out of range for bigint"},
		{"uint too big", uint(math.MaxUint64), param{}, "out of range for bigint"},
		{"float32", float32(1.1), pFloat(TypeFloat4, float64(float32(1.1))), ""},
		{"float64", 0.1, pFloat(TypeFloat8, 0.1), ""},
		{"float64 NaN", math.NaN(), pFloat(TypeFloat8, math.NaN()), ""},
		{"float64 +Inf", math.Inf(1), pFloat(TypeFloat8, math.Inf(1)), ""},
		{"float64 -0", math.Copysign(0, -1), pFloat(TypeFloat8, math.Copysign(0, -1)), ""},
		{"bool true", true, pInt(TypeBool, 1), ""},
		{"bool false", false, pInt(TypeBool, 0), ""},
		{"string empty", "", pText(""), ""},
		{"string unicode", "héllo, 世界 🐘", pText("héllo, 世界 🐘"), ""},
		{"string NUL", "a\x00b", param{}, "spi: parameter $1: string contains a NUL byte, which PostgreSQL text cannot store"},
		{"bytes nil", []byte(nil), pNull(), ""},
		{"bytes empty", []byte{}, pBin([]byte{}), ""},
		{"bytes NUL", []byte{0, 1, 0, 255}, pBin([]byte{0, 1, 0, 255}), ""},
		{"time epoch", epochPlus(0), pTime(0), ""},
		{"time +1us", epochPlus(time.Microsecond), pTime(1), ""},
		{"time +999ns floors", epochPlus(999), pTime(0), ""},
		{"time -1ns floors", epochPlus(-1), pTime(-1), ""},
		{"time -1500ns floors", epochPlus(-1500), pTime(-2), ""},
		{"time zone offset kept", time.Date(2000, 1, 1, 1, 0, 0, 0, time.FixedZone("X", 3600)), pTimeOff(0, 3600), ""},
		{"time unix epoch", time.Unix(0, 0), pTime(-pgEpochUnix * 1e6), ""},
		{"time zero value", time.Time{}, pTime(-63082281600 * 1e6), ""},
		{"time min", time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC), pTime(-211813488000000000), ""},
		{"time before min", time.Date(-4713, 11, 23, 23, 59, 59, 999999999, time.UTC), param{}, "outside PostgreSQL's timestamp range"},
		{"time max", time.Date(294276, 12, 31, 23, 59, 59, 999999999, time.UTC), pTime(9223371331199999999), ""},
		{"time after max", time.Date(294277, 1, 1, 0, 0, 0, 0, time.UTC), param{}, "outside PostgreSQL's timestamp range"},
		{"time far future", time.Unix(math.MaxInt64-1e10, 0), param{}, "outside PostgreSQL's timestamp range"},
		{"time far past", time.Unix(math.MinInt64+1e11, 0), param{}, "outside PostgreSQL's timestamp range"},
		{"*int64 nil", nilInt, pNull(), ""},
		{"*int64", ptr(int64(5)), pInt(TypeInt8, 5), ""},
		{"*string", ptr("x"), pText("x"), ""},
		{"*string nil", (*string)(nil), pNull(), ""},
		{"*int32", ptr(int32(5)), pInt(TypeInt4, 5), ""},
		{"*float64", ptr(2.5), pFloat(TypeFloat8, 2.5), ""},
		{"*bool", ptr(true), pInt(TypeBool, 1), ""},
		{"*time.Time", ptr(epochPlus(time.Second)), pTime(1e6), ""},
		{"*[]byte", ptr([]byte("z")), pBin([]byte("z")), ""},
		{"*[]byte nil slice", ptr([]byte(nil)), pNull(), ""},
		{"**int", ptr(ptr(9)), pInt(TypeInt8, 9), ""},
		{"**int nil", ptr((*int)(nil)), pNull(), ""},
		{"*uint64 too big", ptr(uint64(math.MaxUint64)), param{}, "spi: parameter $1: uint64 value 18446744073709551615 is out of range"},
		{"*string NUL", ptr("\x00"), param{}, "NUL byte"},
		{"named int64", ID(77), pInt(TypeInt8, 77), ""},
		{"named int16", Small(-3), pInt(TypeInt2, -3), ""},
		{"named string", Name("n"), pText("n"), ""},
		{"named string NUL", Name("\x00"), param{}, "NUL byte"},
		{"named bool", Flag(true), pInt(TypeBool, 1), ""},
		{"named []byte", Raw{1, 2}, pBin([]byte{1, 2}), ""},
		{"named []byte nil", Raw(nil), pNull(), ""},
		{"named time", MyTime(epochPlus(time.Second)), pTime(1e6), ""},
		{"named uint64", U64(3), pInt(TypeInt8, 3), ""},
		{"named uint64 too big", U64(math.MaxUint64), param{}, "out of range for bigint"},
		{"named uint8", U8(200), pInt(TypeInt4, 200), ""},
		{"named float32", Ratio(0.5), pFloat(TypeFloat4, 0.5), ""},
		{"*named", ptr(ID(1)), pInt(TypeInt8, 1), ""},
		{"valuer int64", valuer{int64(12)}, pInt(TypeInt8, 12), ""},
		{"valuer string", valuer{"s"}, pText("s"), ""},
		{"valuer nil", valuer{nil}, pNull(), ""},
		{"valuer nested", valuer{valuer{1.5}}, pFloat(TypeFloat8, 1.5), ""},
		{"valuer time", valuer{epochPlus(0)}, pTime(0), ""},
		{"*valuer", &valuer{true}, pInt(TypeBool, 1), ""},
		{"*valuer nil", nilValuer, pNull(), ""},
		{"pointer-receiver valuer nil", nilPtrValuer, pText("nil receiver"), ""},
		{"pointer-receiver valuer", &ptrValuer{}, pText("set"), ""},
		{"valuer error", failValuer{}, param{}, "spi: parameter $1: wire.failValuer.Value: boom"},
		{"valuer loop", loopValuer{}, param{}, "nest more than"},
		{"valuer unsupported", valuer{make(chan int)}, param{}, "spi: parameter $1: unsupported Go type chan int"},
		{"sql.NullInt64 valid", sql.NullInt64{Int64: 3, Valid: true}, pInt(TypeInt8, 3), ""},
		{"sql.NullInt64 null", sql.NullInt64{}, pNull(), ""},
		{"sql.NullString", sql.NullString{String: "q", Valid: true}, pText("q"), ""},
		{"sql.Null[time.Time]", sql.Null[time.Time]{V: epochPlus(0), Valid: true}, pTime(0), ""},
		{"chan", make(chan int), param{}, "spi: parameter $1: unsupported Go type chan int"},
		{"*chan", ptr(make(chan int)), param{}, "spi: parameter $1: unsupported Go type chan int"},
		{"struct", struct{ A int }{}, param{}, "spi: parameter $1: unsupported Go type struct { A int }"},
		{"[]int (pgtype: int8[])", []int{1, 2}, param{kind: KindText, oid: 1016, b: []byte("{1,2}")}, ""},
		{"time.Duration (interval)", 90 * time.Minute, param{kind: KindText, oid: 1186, b: []byte("01:30:00")}, ""},
		{"map", map[string]int{}, param{}, "unsupported Go type map[string]int"},
		{"uintptr", uintptr(1), param{}, "unsupported Go type uintptr"},
		{"complex", 1i, param{}, "unsupported Go type complex128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf, err := EncodeParams([]any{tt.arg})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want containing %q", err, tt.err)
				}
				if buf != nil {
					t.Fatalf("buffer returned along with error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := decodeParams(t, buf)
			if len(got) != 1 || !got[0].equal(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEncodeParamsSeveral(t *testing.T) {
	buf, err := EncodeParams([]any{int64(1), "two", nil, 4.0, []byte{5}, true})
	if err != nil {
		t.Fatal(err)
	}
	want := []param{pInt(TypeInt8, 1), pText("two"), pNull(), pFloat(TypeFloat8, 4), pBin([]byte{5}), pInt(TypeBool, 1)}
	got := decodeParams(t, buf)
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].equal(want[i]) {
			t.Errorf("$%d: got %+v, want %+v", i+1, got[i], want[i])
		}
	}

	// Errors name the 1-based position, as PostgreSQL numbers parameters.
	_, err = EncodeParams([]any{1, make(chan int)})
	if err == nil || err.Error() != "spi: parameter $2: unsupported Go type chan int" {
		t.Fatalf("err = %v", err)
	}

	buf, err = EncodeParams(nil)
	if err != nil || len(buf) != 0 {
		t.Fatalf("no args: %v %v", buf, err)
	}
}

func TestTimeToMicrosMatchesDecode(t *testing.T) {
	// Encoding a time and decoding it as a timestamptz cell gives the time
	// back, floored to the microsecond.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		sec := rng.Int64N(endTimestampSec-minTimestampSec) + minTimestampSec + pgEpochUnix
		tm := time.Unix(sec, rng.Int64N(1e9))
		us, ok := timeToMicros(tm)
		if !ok {
			t.Fatalf("%v: not ok", tm)
		}
		got, inf, reason := Value{Kind: KindInt64, Type: TypeTimestampTZ, I: us}.timeOf()
		if inf != 0 || reason != "" {
			t.Fatalf("%v: inf %d reason %q", tm, inf, reason)
		}
		if want := tm.Truncate(time.Microsecond); !got.Equal(want) {
			t.Fatalf("%v -> %d -> %v, want %v", tm, us, got, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Results

func iv(oid uint32, i int64) Value       { return Value{Kind: KindInt64, Type: oid, I: i} }
func fv(oid uint32, f float64) Value     { return Value{Kind: KindFloat64, Type: oid, F: f} }
func tv(oid uint32, s string) Value      { return Value{Kind: KindText, Type: oid, B: []byte(s)} }
func bv(b []byte) Value                  { return Value{Kind: KindBinary, Type: TypeBytea, B: b} }
func nv(oid uint32) Value                { return Value{Kind: KindNull, Type: oid} }
func col(oid uint32, name string) Column { return Column{Name: name, Type: oid} }

func mustAppend(t testing.TB, cols []Column, rows [][]Value) []byte {
	t.Helper()
	buf, err := AppendResult(nil, cols, rows)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// sampleResult has one column of every kind-relevant type, a row of ordinary
// values, a row of extremes, and a row of NULLs.
func sampleResult() ([]Column, [][]Value) {
	cols := []Column{
		col(TypeBool, "b"), col(TypeInt2, "i2"), col(TypeInt4, "i4"), col(TypeInt8, "i8"),
		col(TypeOid, "oid"), col(TypeFloat4, "f4"), col(TypeFloat8, "f8"), col(TypeDate, "d"),
		col(TypeTime, "t"), col(TypeTimestamp, "ts"), col(TypeTimestampTZ, "tstz"),
		col(TypeBytea, "bytes"), col(TypeText, "txt"), col(TypeVarchar, "vc"), col(TypeBPChar, "bpc"),
		col(TypeName, "nm"), col(TypeJSON, "js"), col(TypeXML, "x"), col(TypeNumeric, "num"),
		col(TypeUUID, "u"), col(TypeJSONB, "jb"), col(1186, "interval"), col(TypeChar, "ch"),
		col(TypeUnknown, ""), col(TypeText, "名前"),
	}
	row1 := []Value{
		iv(TypeBool, 1), iv(TypeInt2, -2), iv(TypeInt4, 4), iv(TypeInt8, 8),
		iv(TypeOid, 4000000000), fv(TypeFloat4, 1.5), fv(TypeFloat8, 0.1), iv(TypeDate, 9000),
		iv(TypeTime, 45296789000), iv(TypeTimestamp, 1), iv(TypeTimestampTZ, -1),
		bv([]byte{0, 'a', 0}), tv(TypeText, "héllo"), tv(TypeVarchar, ""), tv(TypeBPChar, "ab  "),
		tv(TypeName, "pg_class"), tv(TypeJSON, `{"a":1}`), tv(TypeXML, "<a/>"), tv(TypeNumeric, "12.50"),
		tv(TypeUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), tv(TypeJSONB, `{"a": 1}`), tv(1186, "1 day"), tv(TypeChar, "c"),
		tv(TypeUnknown, "?"), tv(TypeText, "世界"),
	}
	row2 := []Value{
		iv(TypeBool, 0), iv(TypeInt2, math.MinInt16), iv(TypeInt4, math.MaxInt32), iv(TypeInt8, math.MinInt64),
		iv(TypeOid, 0), fv(TypeFloat4, math.Inf(-1)), fv(TypeFloat8, math.NaN()), iv(TypeDate, math.MaxInt32),
		iv(TypeTime, usPerDay), iv(TypeTimestamp, math.MaxInt64), iv(TypeTimestampTZ, math.MinInt64),
		bv([]byte{}), tv(TypeText, strings.Repeat("x", 1000)), tv(TypeVarchar, "\u00e9"), tv(TypeBPChar, ""),
		tv(TypeName, ""), tv(TypeJSON, "null"), tv(TypeXML, ""), tv(TypeNumeric, "NaN"),
		tv(TypeUUID, ""), tv(TypeJSONB, "[]"), tv(1186, "-00:00:01"), tv(TypeChar, ""),
		tv(TypeUnknown, ""), tv(TypeText, ""),
	}
	row3 := make([]Value, len(cols))
	for i, c := range cols {
		row3[i] = nv(c.Type)
	}
	return cols, [][]Value{row1, row2, row3}
}

func valuesEqual(a, b Value) bool {
	return a.Kind == b.Kind && a.Type == b.Type && a.I == b.I &&
		math.Float64bits(a.F) == math.Float64bits(b.F) && bytes.Equal(a.B, b.B)
}

func TestDecodeResultRoundTrip(t *testing.T) {
	cols, rows := sampleResult()
	buf := mustAppend(t, cols, rows)
	r, err := DecodeResult(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Columns, cols) {
		t.Fatalf("columns %v, want %v", r.Columns, cols)
	}
	if r.NumRows != len(rows) {
		t.Fatalf("NumRows %d", r.NumRows)
	}
	var row []Value
	for i := range r.NumRows {
		row = r.Row(i, row)
		if len(row) != len(cols) {
			t.Fatalf("row %d: %d values", i, len(row))
		}
		for c := range row {
			if !valuesEqual(row[c], rows[i][c]) {
				t.Errorf("row %d col %d: got %+v, want %+v", i, c, row[c], rows[i][c])
			}
			if (row[c].B == nil) != (row[c].Kind == KindNull || row[c].Kind == KindInt64 || row[c].Kind == KindFloat64) {
				t.Errorf("row %d col %d: B nil-ness %v for kind %d", i, c, row[c].B == nil, row[c].Kind)
			}
		}
	}
	// Re-encoding the decoded rows reproduces the buffer exactly.
	var again [][]Value
	for i := range r.NumRows {
		again = append(again, r.Row(i, nil))
	}
	if buf2 := mustAppend(t, r.Columns, again); !bytes.Equal(buf, buf2) {
		t.Fatal("re-encoded buffer differs")
	}
}

func TestRowBytesDoNotClobberBuffer(t *testing.T) {
	buf := mustAppend(t, []Column{col(TypeText, "a"), col(TypeText, "b")},
		[][]Value{{tv(TypeText, "xy"), tv(TypeText, "zz")}})
	r, err := DecodeResult(buf)
	if err != nil {
		t.Fatal(err)
	}
	row := r.Row(0, nil)
	_ = append(row[0].B, "!!!"...) // must reallocate, not overwrite column b
	row = r.Row(0, row)
	if string(row[1].B) != "zz" {
		t.Fatalf("column b = %q", row[1].B)
	}
}

func TestEmptyResults(t *testing.T) {
	// A statement without a tuple table (INSERT without RETURNING): as the C
	// side writes it.
	r, err := DecodeResult(make([]byte, 12))
	if err != nil || len(r.Columns) != 0 || r.NumRows != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	// Rows without columns (SELECT FROM t): NumRows counts them, Row is empty.
	buf := mustAppend(t, nil, [][]Value{{}, {}, {}})
	r, err = DecodeResult(buf)
	if err != nil || r.NumRows != 3 {
		t.Fatalf("%+v %v", r, err)
	}
	if row := r.Row(2, make([]Value, 5)); len(row) != 0 {
		t.Fatalf("row %v", row)
	}
	// Columns without rows.
	r, err = DecodeResult(mustAppend(t, []Column{col(TypeInt4, "n")}, nil))
	if err != nil || r.NumRows != 0 || len(r.Columns) != 1 {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestRowOutOfRangePanics(t *testing.T) {
	r, err := DecodeResult(mustAppend(t, []Column{col(TypeInt4, "n")}, [][]Value{{iv(TypeInt4, 1)}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{-1, 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Row(%d) did not panic", i)
				}
			}()
			r.Row(i, nil)
		}()
	}
}

func TestDecodeResultRejects(t *testing.T) {
	cols, rows := sampleResult()
	valid := mustAppend(t, cols, rows)

	// Every proper prefix is truncated.
	for n := range len(valid) {
		if _, err := DecodeResult(valid[:n]); err == nil {
			t.Fatalf("prefix of %d/%d bytes accepted", n, len(valid))
		}
	}
	if _, err := DecodeResult(append(bytes.Clone(valid), 0)); err == nil || !strings.Contains(err.Error(), "after the last row") {
		t.Fatalf("trailing byte: %v", err)
	}

	le := binary.LittleEndian
	u32 := func(v uint32) []byte { return le.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return le.AppendUint64(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	int8Col := cat(u32(1), u32(TypeInt8), u32(1), []byte("n"))

	tests := []struct {
		name string
		buf  []byte
		err  string
	}{
		{"nil", nil, "truncated"},
		{"huge ncols", cat(u32(math.MaxUint32), u64(0)), "cannot fit"},
		{"ncols beyond buffer", cat(u32(3), make([]byte, 20)), "cannot fit"},
		{"name beyond buffer", cat(u32(1), u32(TypeText), u32(100), []byte("abc")), "truncated"},
		{"huge nrows", cat(int8Col, u64(1<<62)), "cannot fit"},
		{"nrows over MaxInt", cat(int8Col, u64(math.MaxUint64)), "too large"},
		{"bad kind", cat(int8Col, u64(1), []byte{9}, u64(0)), "cell kind 9"},
		{"kind mismatch", cat(int8Col, u64(1), []byte{KindText}, u32(1), []byte("1")), "cell kind 3, want 1"},
		{"text length beyond", cat(u32(1), u32(TypeText), u32(0), u64(1), []byte{KindText}, u32(math.MaxUint32), []byte("x")), "truncated"},
		{"trailing after no columns", cat(u32(0), u64(5), []byte{0}), "no columns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeResult(tt.buf)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %+v, %v; want error containing %q", r, err, tt.err)
			}
		})
	}
}

func TestDecodeResultGarbage(t *testing.T) {
	// Random buffers and single-byte corruptions of a valid one: errors or
	// decodable results, never panics.
	cols, rows := sampleResult()
	rows[1][12] = tv(TypeText, "xyz") // keep the buffer short: every byte gets mutated
	valid := mustAppend(t, cols, rows)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		buf := make([]byte, rng.IntN(64))
		for i := range buf {
			buf[i] = byte(rng.UintN(256))
		}
		exercise(buf)
	}
	for i := range valid {
		for _, x := range []byte{1, 4, 0x80, 0xff} {
			buf := bytes.Clone(valid)
			buf[i] ^= x
			exercise(buf)
		}
	}
}

// exercise decodes buf and, if it is valid, converts every cell every way; it
// only checks that nothing panics. It reports whether buf decoded.
func exercise(buf []byte) bool {
	r, err := DecodeResult(buf)
	if err != nil {
		return false
	}
	var row []Value
	for i := range min(r.NumRows, 1000) {
		row = r.Row(i, row)
		for c, v := range row {
			_, _ = v.Natural()
			var (
				a   any
				s   string
				b   []byte
				i64 int64
				u8  uint8
				f32 float32
				f64 float64
				ok  bool
				tm  time.Time
				pi  *int32
				ns  sql.NullString
			)
			for _, d := range []any{&a, &s, &b, &i64, &u8, &f32, &f64, &ok, &tm, &pi, &ns} {
				_ = Assign(d, v, r.Columns[c], c)
			}
		}
	}
	return true
}

func TestAppendResultRejects(t *testing.T) {
	cols := []Column{col(TypeInt8, "n")}
	if _, err := AppendResult(nil, cols, [][]Value{{}}); err == nil {
		t.Error("short row accepted")
	}
	if _, err := AppendResult(nil, cols, [][]Value{{tv(TypeInt8, "1")}}); err == nil {
		t.Error("text cell in a bigint column accepted")
	}
}

func TestRowDoesNotAllocate(t *testing.T) {
	cols, rows := sampleResult()
	r, err := DecodeResult(mustAppend(t, cols, rows))
	if err != nil {
		t.Fatal(err)
	}
	row := make([]Value, 0, len(cols))
	var n int64
	allocs := testing.AllocsPerRun(100, func() {
		for i := range r.NumRows {
			row = r.Row(i, row)
			if row[3].Kind == KindNull {
				continue // the error for NULL allocates, and is tested elsewhere
			}
			if err := Assign(&n, row[3], r.Columns[3], 3); err != nil {
				panic(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per pass", allocs)
	}
}

func TestExpectedKindAndFormatType(t *testing.T) {
	for oid, want := range map[uint32]byte{
		TypeBool: KindInt64, TypeTimestampTZ: KindInt64, TypeFloat4: KindFloat64,
		TypeBytea: KindBinary, TypeName: KindText, TypeNumeric: KindText, 99999: KindText,
	} {
		if got := ExpectedKind(oid); got != want {
			t.Errorf("ExpectedKind(%d) = %d, want %d", oid, got, want)
		}
	}
	if got := FormatType(TypeInt4); got != "integer" {
		t.Errorf("FormatType(int4) = %q", got)
	}
	if got := FormatType(12345); got != "type with OID 12345" {
		t.Errorf("FormatType(12345) = %q", got)
	}
}

// ---------------------------------------------------------------------------
// Conversions

func utc(y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
}

func TestNatural(t *testing.T) {
	tests := []struct {
		v    Value
		want any
		err  string
	}{
		{nv(TypeInt4), nil, ""},
		{iv(TypeBool, 1), true, ""},
		{iv(TypeBool, 0), false, ""},
		{iv(TypeInt2, math.MinInt16), int16(math.MinInt16), ""},
		{iv(TypeInt2, 70000), nil, "spi: smallint value 70000 out of range"},
		{iv(TypeInt4, math.MaxInt32), int32(math.MaxInt32), ""},
		{iv(TypeInt4, math.MaxInt32+1), nil, "integer value 2147483648 out of range"},
		{iv(TypeInt8, math.MinInt64), int64(math.MinInt64), ""},
		{iv(TypeOid, math.MaxUint32), uint32(math.MaxUint32), ""},
		{iv(TypeOid, -1), nil, "oid value -1 out of range"},
		{iv(99999, 5), int64(5), ""}, // unknown type sent as an integer
		{fv(TypeFloat4, 1.5), float32(1.5), ""},
		{fv(TypeFloat8, 0.1), 0.1, ""},
		{fv(TypeFloat8, math.Inf(1)), math.Inf(1), ""},
		{iv(TypeDate, 0), utc(2000, 1, 1, 0, 0, 0, 0), ""},
		{iv(TypeDate, -1), utc(1999, 12, 31, 0, 0, 0, 0), ""},
		{iv(TypeDate, -2451545), utc(-4713, 11, 24, 0, 0, 0, 0), ""}, // PostgreSQL's first date
		{iv(TypeDate, math.MaxInt32), "infinity", ""},
		{iv(TypeDate, math.MinInt32), "-infinity", ""},
		{iv(TypeDate, math.MaxInt64), "infinity", ""},
		{iv(TypeDate, math.MinInt64), "-infinity", ""},
		{iv(TypeDate, 1<<40), nil, "date value 1099511627776 out of range"},
		{iv(TypeTimestamp, 0), utc(2000, 1, 1, 0, 0, 0, 0), ""},
		{iv(TypeTimestamp, math.MaxInt32), utc(2000, 1, 1, 0, 35, 47, 483647000), ""}, // not infinity for timestamps
		{iv(TypeTimestampTZ, -1), utc(1999, 12, 31, 23, 59, 59, 999999000), ""},
		{iv(TypeTimestampTZ, -211813488000000000), utc(-4713, 11, 24, 0, 0, 0, 0), ""},
		{iv(TypeTimestampTZ, 9223371331199999999), utc(294276, 12, 31, 23, 59, 59, 999999000), ""},
		{iv(TypeTimestampTZ, math.MaxInt64), "infinity", ""},
		{iv(TypeTimestamp, math.MinInt64), "-infinity", ""},
		{iv(TypeTimestamp, math.MaxInt64-1), utc(294277, 1, 9, 4, 0, 54, 775806000), ""}, // beyond PostgreSQL's range: still converted
		{iv(TypeTime, 0), "00:00:00", ""},
		{iv(TypeTime, 45296789000), "12:34:56.789", ""},
		{iv(TypeTime, 1), "00:00:00.000001", ""},
		{iv(TypeTime, usPerDay), "24:00:00", ""},
		{iv(TypeTime, usPerDay+1), nil, "time value 86400000001 out of range"},
		{iv(TypeTime, -1), nil, "out of range"},
		{bv([]byte{0, 1}), []byte{0, 1}, ""},
		{bv([]byte{}), []byte{}, ""},
		{tv(TypeText, "héllo"), "héllo", ""},
		{tv(TypeNumeric, "1.50"), pgtype.Numeric{Int: big.NewInt(150), Exp: -2, Valid: true}, ""},
		{tv(1186, "1 day"), pgtype.Interval{Days: 1, Valid: true}, ""},
		{tv(1007, "{1,NULL,3}"), []any{int32(1), nil, int32(3)}, ""},
		{Value{Kind: 9}, nil, "invalid cell kind 9"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/%d", FormatType(tt.v.Type), tt.v.Kind, tt.v.I), func(t *testing.T) {
			got, err := tt.v.Natural()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
			if tm, ok := got.(time.Time); ok && tm.Location() != time.UTC {
				t.Fatalf("location %v", tm.Location())
			}
		})
	}
}

func TestNaturalCopies(t *testing.T) {
	buf := []byte("abc")
	for _, v := range []Value{tv(TypeText, ""), bv(nil)} {
		v.B = buf
		got, _ := v.Natural()
		buf[0] = 'X'
		if s, ok := got.(string); ok && s != "abc" {
			t.Fatalf("string aliases the buffer: %q", s)
		}
		if b, ok := got.([]byte); ok && string(b) != "Xbc" && string(b) != "abc" {
			t.Fatalf("got %q", b)
		} else if ok && &b[0] == &buf[0] {
			t.Fatal("[]byte aliases the buffer")
		}
		buf[0] = 'a'
	}
}

// recScanner records what Scan receives.
type recScanner struct{ got any }

func (r *recScanner) Scan(src any) error { r.got = src; return nil }

type failScanner struct{}

func (*failScanner) Scan(any) error { return errors.New("nope") }

func TestAssign(t *testing.T) {
	tsMin := int64(-211813488000000000)
	nan := math.NaN()
	tests := []struct {
		name string
		v    Value
		dest func() any // a fresh destination
		want any        // what the destination points to afterwards
		err  string     // substring of the error, if one is expected
	}{
		// *int64 and friends.
		{"int8->int64 max", iv(TypeInt8, math.MaxInt64), func() any { return new(int64) }, int64(math.MaxInt64), ""},
		{"int8->int64 min", iv(TypeInt8, math.MinInt64), func() any { return new(int64) }, int64(math.MinInt64), ""},
		{"int2->int64", iv(TypeInt2, -5), func() any { return new(int64) }, int64(-5), ""},
		{"oid->int64", iv(TypeOid, math.MaxUint32), func() any { return new(int64) }, int64(math.MaxUint32), ""},
		{"oid->uint32", iv(TypeOid, math.MaxUint32), func() any { return new(uint32) }, uint32(math.MaxUint32), ""},
		{"int8->int", iv(TypeInt8, math.MinInt64), func() any { return new(int) }, int(math.MinInt64), ""},
		{"int8->int32 overflow", iv(TypeInt8, 1<<40), func() any { return new(int32) }, int32(0),
			`spi: cannot scan column 1 ("c") of type bigint into *int32: value 1099511627776 out of range`},
		{"int8->int32 max", iv(TypeInt8, math.MaxInt32), func() any { return new(int32) }, int32(math.MaxInt32), ""},
		{"int8->int32 min-1", iv(TypeInt8, math.MinInt32-1), func() any { return new(int32) }, int32(0), "out of range"},
		{"int4->int16 overflow", iv(TypeInt4, 32768), func() any { return new(int16) }, int16(0), "out of range"},
		{"int4->int16 min", iv(TypeInt4, -32768), func() any { return new(int16) }, int16(-32768), ""},
		{"int2->int8 127", iv(TypeInt2, 127), func() any { return new(int8) }, int8(127), ""},
		{"int2->int8 128", iv(TypeInt2, 128), func() any { return new(int8) }, int8(0), "out of range"},
		{"int2->int8 -129", iv(TypeInt2, -129), func() any { return new(int8) }, int8(0), "out of range"},
		{"int8->uint64 max", iv(TypeInt8, math.MaxInt64), func() any { return new(uint64) }, uint64(math.MaxInt64), ""},
		{"int8->uint64 -1", iv(TypeInt8, -1), func() any { return new(uint64) }, uint64(0), "value -1 out of range"},
		{"int8->uint -1", iv(TypeInt8, -1), func() any { return new(uint) }, uint(0), "out of range"},
		{"int4->uint8 255", iv(TypeInt4, 255), func() any { return new(uint8) }, uint8(255), ""},
		{"int4->uint8 256", iv(TypeInt4, 256), func() any { return new(uint8) }, uint8(0), "value 256 out of range"},
		{"int4->uint16", iv(TypeInt4, 65535), func() any { return new(uint16) }, uint16(65535), ""},
		{"int8->uint32 2^32", iv(TypeInt8, 1<<32), func() any { return new(uint32) }, uint32(0), "out of range"},
		{"numeric->int64", tv(TypeNumeric, "-9223372036854775808"), func() any { return new(int64) }, int64(math.MinInt64), ""},
		{"numeric scale->int", tv(TypeNumeric, "42.000"), func() any { return new(int) }, 42, ""},
		{"numeric dot->int", tv(TypeNumeric, "42."), func() any { return new(int) }, 42, ""},
		{"numeric fraction->int", tv(TypeNumeric, "42.50"), func() any { return new(int) }, 0, "invalid syntax"},
		{"numeric big->int64", tv(TypeNumeric, "9223372036854775808"), func() any { return new(int64) }, int64(0), "out of range"},
		{"numeric->int16 overflow", tv(TypeNumeric, "40000"), func() any { return new(int16) }, int16(0), "value 40000 out of range"},
		{"numeric->uint64 max", tv(TypeNumeric, "18446744073709551615"), func() any { return new(uint64) }, uint64(math.MaxUint64), ""},
		{"numeric->uint negative", tv(TypeNumeric, "-1"), func() any { return new(uint) }, uint(0), "value -1 out of range"},
		{"text->int32", tv(TypeText, "17"), func() any { return new(int32) }, int32(17), ""},
		{"text abc->int", tv(TypeText, "abc"), func() any { return new(int) }, 0, `parsing "abc": invalid syntax`},
		{"text->uint8 junk", tv(TypeText, "x"), func() any { return new(uint8) }, uint8(0), "invalid syntax"},
		{"float8->int64", fv(TypeFloat8, 1), func() any { return new(int64) }, int64(0),
			`spi: cannot scan column 1 ("c") of type double precision into *int64`},
		{"bool->int", iv(TypeBool, 1), func() any { return new(int) }, 0, "of type boolean into *int"},
		{"timestamptz->int64", iv(TypeTimestampTZ, 1), func() any { return new(int64) }, int64(0), "into *int64"},
		{"bytea->int64", bv([]byte("1")), func() any { return new(int64) }, int64(0), "of type bytea into *int64"},

		// Floats.
		{"float8->float64", fv(TypeFloat8, 0.1), func() any { return new(float64) }, 0.1, ""},
		{"float8 NaN", fv(TypeFloat8, nan), func() any { return new(float64) }, nan, ""},
		{"float8 +Inf", fv(TypeFloat8, math.Inf(1)), func() any { return new(float64) }, math.Inf(1), ""},
		{"float8 -Inf", fv(TypeFloat8, math.Inf(-1)), func() any { return new(float64) }, math.Inf(-1), ""},
		{"float8 -0", fv(TypeFloat8, math.Copysign(0, -1)), func() any { return new(float64) }, math.Copysign(0, -1), ""},
		{"float8 max", fv(TypeFloat8, math.MaxFloat64), func() any { return new(float64) }, math.MaxFloat64, ""},
		{"float8 smallest", fv(TypeFloat8, math.SmallestNonzeroFloat64), func() any { return new(float64) }, math.SmallestNonzeroFloat64, ""},
		{"float4->float32", fv(TypeFloat4, float64(float32(0.1))), func() any { return new(float32) }, float32(0.1), ""},
		{"float4->float64", fv(TypeFloat4, float64(float32(0.1))), func() any { return new(float64) }, float64(float32(0.1)), ""},
		{"float8->float32 rounds", fv(TypeFloat8, 0.1), func() any { return new(float32) }, float32(0.1), ""},
		{"float8->float32 overflow", fv(TypeFloat8, 1e300), func() any { return new(float32) }, float32(0), "value 1e+300 out of range"},
		{"float8 Inf->float32", fv(TypeFloat8, math.Inf(-1)), func() any { return new(float32) }, float32(math.Inf(-1)), ""},
		{"float8 NaN->float32", fv(TypeFloat8, nan), func() any { return new(float32) }, float32(nan), ""},
		{"int4->float64", iv(TypeInt4, 7), func() any { return new(float64) }, 7.0, ""},
		{"int8 2^53->float64", iv(TypeInt8, 1<<53), func() any { return new(float64) }, float64(1 << 53), ""},
		{"int8 2^53+1->float64", iv(TypeInt8, 1<<53+1), func() any { return new(float64) }, 0.0, "cannot be represented exactly as float64"},
		{"int8 max->float64", iv(TypeInt8, math.MaxInt64), func() any { return new(float64) }, 0.0, "cannot be represented exactly"},
		{"int8 min->float64", iv(TypeInt8, math.MinInt64), func() any { return new(float64) }, -0x1p63, ""},
		{"int4 2^24+1->float32", iv(TypeInt4, 1<<24+1), func() any { return new(float32) }, float32(0), "exactly as float32"},
		{"int4 2^24->float32", iv(TypeInt4, 1<<24), func() any { return new(float32) }, float32(1 << 24), ""},
		{"numeric->float64", tv(TypeNumeric, "3.25"), func() any { return new(float64) }, 3.25, ""},
		{"numeric NaN->float64", tv(TypeNumeric, "NaN"), func() any { return new(float64) }, nan, ""},
		{"numeric Infinity->float64", tv(TypeNumeric, "Infinity"), func() any { return new(float64) }, math.Inf(1), ""},
		{"numeric -Infinity->float32", tv(TypeNumeric, "-Infinity"), func() any { return new(float32) }, float32(math.Inf(-1)), ""},
		{"numeric 1e39->float32", tv(TypeNumeric, "1e39"), func() any { return new(float32) }, float32(0), "value out of range"},
		{"text junk->float64", tv(TypeText, "x"), func() any { return new(float64) }, 0.0, "invalid syntax"},
		{"bool->float64", iv(TypeBool, 1), func() any { return new(float64) }, 0.0, "of type boolean into *float64"},

		// Booleans.
		{"bool true", iv(TypeBool, 1), func() any { return new(bool) }, true, ""},
		{"bool false", iv(TypeBool, 0), func() any { return ptr(true) }, false, ""},
		{"text t", tv(TypeText, "t"), func() any { return new(bool) }, true, ""},
		{"text true", tv(TypeText, "true"), func() any { return new(bool) }, true, ""},
		{"text f", tv(TypeText, "f"), func() any { return ptr(true) }, false, ""},
		{"text false", tv(TypeText, "false"), func() any { return ptr(true) }, false, ""},
		{"text yes", tv(TypeText, "yes"), func() any { return new(bool) }, false, `cannot parse "yes" as a boolean`},
		{"int4->bool", iv(TypeInt4, 1), func() any { return new(bool) }, false, "of type integer into *bool"},

		// Strings.
		{"text empty", tv(TypeText, ""), func() any { return ptr("old") }, "", ""},
		{"text unicode", tv(TypeText, "héllo, 世界 🐘"), func() any { return new(string) }, "héllo, 世界 🐘", ""},
		{"bpchar keeps padding", tv(TypeBPChar, "ab  "), func() any { return new(string) }, "ab  ", ""},
		{"json", tv(TypeJSON, `{"a": [1]}`), func() any { return new(string) }, `{"a": [1]}`, ""},
		{"numeric->string", tv(TypeNumeric, "12.50"), func() any { return new(string) }, "12.50", ""},
		{"bytea->string raw", bv([]byte{'a', 0, 'b'}), func() any { return new(string) }, "a\x00b", ""},
		{"int8 min->string", iv(TypeInt8, math.MinInt64), func() any { return new(string) }, "-9223372036854775808", ""},
		{"int2->string", iv(TypeInt2, -7), func() any { return new(string) }, "-7", ""},
		{"oid->string", iv(TypeOid, 4000000000), func() any { return new(string) }, "4000000000", ""},
		{"bool->string t", iv(TypeBool, 1), func() any { return new(string) }, "t", ""},
		{"bool->string f", iv(TypeBool, 0), func() any { return new(string) }, "f", ""},
		{"float8 NaN->string", fv(TypeFloat8, nan), func() any { return new(string) }, "NaN", ""},
		{"float8 Inf->string", fv(TypeFloat8, math.Inf(1)), func() any { return new(string) }, "Infinity", ""},
		{"float8 -Inf->string", fv(TypeFloat8, math.Inf(-1)), func() any { return new(string) }, "-Infinity", ""},
		{"float8 1.5->string", fv(TypeFloat8, 1.5), func() any { return new(string) }, "1.5", ""},
		{"float8 0.1->string", fv(TypeFloat8, 0.1), func() any { return new(string) }, "0.1", ""},
		{"float8 -0->string", fv(TypeFloat8, math.Copysign(0, -1)), func() any { return new(string) }, "-0", ""},
		{"float8 1234567->string", fv(TypeFloat8, 1234567), func() any { return new(string) }, "1234567", ""},
		{"float8 1e14->string", fv(TypeFloat8, 1e14), func() any { return new(string) }, "100000000000000", ""},
		{"float8 1e15->string", fv(TypeFloat8, 1e15), func() any { return new(string) }, "1e+15", ""},
		{"float8 1e20->string", fv(TypeFloat8, 1e20), func() any { return new(string) }, "1e+20", ""},
		{"float8 0.0001->string", fv(TypeFloat8, 0.0001), func() any { return new(string) }, "0.0001", ""},
		{"float8 1e-5->string", fv(TypeFloat8, 1e-5), func() any { return new(string) }, "1e-05", ""},
		{"float8 max->string", fv(TypeFloat8, math.MaxFloat64), func() any { return new(string) }, "1.7976931348623157e+308", ""},
		{"float4 0.1->string", fv(TypeFloat4, float64(float32(0.1))), func() any { return new(string) }, "0.1", ""},
		{"float4 123456->string", fv(TypeFloat4, 123456), func() any { return new(string) }, "123456", ""},
		{"float4 1234567->string", fv(TypeFloat4, 1234567), func() any { return new(string) }, "1.234567e+06", ""},
		{"date->string", iv(TypeDate, 0), func() any { return new(string) }, "2000-01-01", ""},
		{"date -1->string", iv(TypeDate, -1), func() any { return new(string) }, "1999-12-31", ""},
		{"date BC->string", iv(TypeDate, -2451545), func() any { return new(string) }, "4714-11-24 BC", ""},
		{"date 1 BC->string", iv(TypeDate, -730485), func() any { return new(string) }, "0001-01-01 BC", ""},
		{"date max->string", iv(TypeDate, 2145031948), func() any { return new(string) }, "5874897-12-31", ""},
		{"date inf->string", iv(TypeDate, math.MaxInt32), func() any { return new(string) }, "infinity", ""},
		{"date -inf->string", iv(TypeDate, math.MinInt32), func() any { return new(string) }, "-infinity", ""},
		{"timestamp->string", iv(TypeTimestamp, 0), func() any { return new(string) }, "2000-01-01 00:00:00", ""},
		{"timestamp frac->string", iv(TypeTimestamp, 500000), func() any { return new(string) }, "2000-01-01 00:00:00.5", ""},
		{"timestamptz->string", iv(TypeTimestampTZ, 1), func() any { return new(string) }, "2000-01-01 00:00:00.000001+00", ""},
		{"timestamptz -1->string", iv(TypeTimestampTZ, -1), func() any { return new(string) }, "1999-12-31 23:59:59.999999+00", ""},
		{"timestamp min->string", iv(TypeTimestamp, tsMin), func() any { return new(string) }, "4714-11-24 00:00:00 BC", ""},
		{"timestamptz min->string", iv(TypeTimestampTZ, tsMin), func() any { return new(string) }, "4714-11-24 00:00:00+00 BC", ""},
		{"timestamp max->string", iv(TypeTimestamp, 9223371331199999999), func() any { return new(string) }, "294276-12-31 23:59:59.999999", ""},
		{"timestamptz inf->string", iv(TypeTimestampTZ, math.MaxInt64), func() any { return new(string) }, "infinity", ""},
		{"timestamp -inf->string", iv(TypeTimestamp, math.MinInt64), func() any { return new(string) }, "-infinity", ""},
		{"time->string", iv(TypeTime, 45296789000), func() any { return new(string) }, "12:34:56.789", ""},
		{"time 24h->string", iv(TypeTime, usPerDay), func() any { return new(string) }, "24:00:00", ""},
		{"time bad->string", iv(TypeTime, -5), func() any { return new(string) }, "", "time value -5 out of range"},

		// []byte.
		{"bytea->bytes", bv([]byte{0, 1, 0}), func() any { return new([]byte) }, []byte{0, 1, 0}, ""},
		{"bytea empty->bytes", bv([]byte{}), func() any { return new([]byte) }, []byte{}, ""},
		{"bytea NULL->bytes", nv(TypeBytea), func() any { return ptr([]byte("old")) }, []byte(nil), ""},
		{"text->bytes", tv(TypeText, "héllo"), func() any { return new([]byte) }, []byte("héllo"), ""},
		{"int->bytes", iv(TypeInt4, 42), func() any { return new([]byte) }, []byte("42"), ""},
		{"timestamptz->bytes", iv(TypeTimestampTZ, 0), func() any { return new([]byte) }, []byte("2000-01-01 00:00:00+00"), ""},
		{"time bad->bytes", iv(TypeTime, -5), func() any { return new([]byte) }, []byte(nil), "out of range"},

		// time.Time.
		{"timestamptz->time", iv(TypeTimestampTZ, 0), func() any { return new(time.Time) }, utc(2000, 1, 1, 0, 0, 0, 0), ""},
		{"timestamptz -1->time", iv(TypeTimestampTZ, -1), func() any { return new(time.Time) }, utc(1999, 12, 31, 23, 59, 59, 999999000), ""},
		{"timestamp->time", iv(TypeTimestamp, 86400e6+1), func() any { return new(time.Time) }, utc(2000, 1, 2, 0, 0, 0, 1000), ""},
		{"timestamp min->time", iv(TypeTimestamp, tsMin), func() any { return new(time.Time) }, utc(-4713, 11, 24, 0, 0, 0, 0), ""},
		{"timestamp max->time", iv(TypeTimestamp, 9223371331199999999), func() any { return new(time.Time) }, utc(294276, 12, 31, 23, 59, 59, 999999000), ""},
		{"date->time", iv(TypeDate, 366), func() any { return new(time.Time) }, utc(2001, 1, 1, 0, 0, 0, 0), ""},
		{"timestamptz inf->time", iv(TypeTimestampTZ, math.MaxInt64), func() any { return new(time.Time) }, time.Time{},
			`spi: cannot scan column 1 ("c") of type timestamp with time zone into *time.Time: value is infinity, which time.Time cannot represent`},
		{"timestamp -inf->time", iv(TypeTimestamp, math.MinInt64), func() any { return new(time.Time) }, time.Time{}, "value is -infinity"},
		{"date inf->time", iv(TypeDate, math.MaxInt32), func() any { return new(time.Time) }, time.Time{}, "value is infinity"},
		{"date -inf->time", iv(TypeDate, math.MinInt32), func() any { return new(time.Time) }, time.Time{}, "value is -infinity"},
		{"date bad->time", iv(TypeDate, 1<<40), func() any { return new(time.Time) }, time.Time{}, "date value 1099511627776 out of range"},
		{"int4->time", iv(TypeInt4, 1), func() any { return new(time.Time) }, time.Time{},
			`spi: cannot scan column 1 ("c") of type integer into *time.Time`},
		{"time->time.Time", iv(TypeTime, 1), func() any { return new(time.Time) }, time.Time{}, "of type time without time zone into *time.Time"},
		{"text->time", tv(TypeText, "2000-01-01"), func() any { return new(time.Time) }, time.Time{}, "of type text into *time.Time"},

		// *any.
		{"any int4", iv(TypeInt4, 3), func() any { return new(any) }, any(int32(3)), ""},
		{"any NULL", nv(TypeInt4), func() any { return ptr[any](1) }, any(nil), ""},
		{"any text", tv(TypeText, "s"), func() any { return new(any) }, any("s"), ""},
		{"any inf", iv(TypeTimestampTZ, math.MaxInt64), func() any { return new(any) }, any("infinity"), ""},
		{"any int2 bad", iv(TypeInt2, 1<<20), func() any { return new(any) }, any(nil), `into *interface {}: smallint value 1048576 out of range`},
		{"named interface", iv(TypeInt8, 3), func() any { return new(AnyIntf) }, AnyIntf(int64(3)), ""},
		{"fmt.Stringer", iv(TypeInt8, 3), func() any { return new(fmt.Stringer) }, fmt.Stringer(nil), "into *fmt.Stringer"},
		{"error iface NULL", nv(TypeInt8), func() any { return ptr(errors.New("x")) }, error(nil), ""},

		// sql.Scanner.
		{"NullInt64", iv(TypeInt4, 7), func() any { return new(sql.NullInt64) }, sql.NullInt64{Int64: 7, Valid: true}, ""},
		{"NullInt64 NULL", nv(TypeInt4), func() any { return &sql.NullInt64{Int64: 1, Valid: true} }, sql.NullInt64{}, ""},
		{"NullInt32 overflow", iv(TypeInt8, 1<<40), func() any { return new(sql.NullInt32) }, sql.NullInt32{}, "into *sql.NullInt32: converting driver.Value type int64"},
		{"NullString text", tv(TypeText, "x"), func() any { return new(sql.NullString) }, sql.NullString{String: "x", Valid: true}, ""},
		{"NullString int", iv(TypeInt8, 5), func() any { return new(sql.NullString) }, sql.NullString{String: "5", Valid: true}, ""},
		{"NullFloat64 float4", fv(TypeFloat4, 0.5), func() any { return new(sql.NullFloat64) }, sql.NullFloat64{Float64: 0.5, Valid: true}, ""},
		{"NullBool", iv(TypeBool, 1), func() any { return new(sql.NullBool) }, sql.NullBool{Bool: true, Valid: true}, ""},
		{"NullTime", iv(TypeTimestampTZ, 0), func() any { return new(sql.NullTime) }, sql.NullTime{Time: utc(2000, 1, 1, 0, 0, 0, 0), Valid: true}, ""},
		{"NullTime infinity", iv(TypeTimestampTZ, math.MaxInt64), func() any { return new(sql.NullTime) }, sql.NullTime{}, "into *sql.NullTime"},
		{"Null[[]byte]", bv([]byte{1}), func() any { return new(sql.Null[[]byte]) }, sql.Null[[]byte]{V: []byte{1}, Valid: true}, ""},
		{"scanner int2", iv(TypeInt2, 2), func() any { return new(recScanner) }, recScanner{int64(2)}, ""},
		{"scanner oid", iv(TypeOid, 2), func() any { return new(recScanner) }, recScanner{int64(2)}, ""},
		{"scanner float4", fv(TypeFloat4, 2), func() any { return new(recScanner) }, recScanner{2.0}, ""},
		{"scanner bool", iv(TypeBool, 0), func() any { return new(recScanner) }, recScanner{false}, ""},
		{"scanner numeric", tv(TypeNumeric, "1.0"), func() any { return new(recScanner) }, recScanner{"1.0"}, ""},
		{"scanner bytea", bv([]byte("b")), func() any { return new(recScanner) }, recScanner{[]byte("b")}, ""},
		{"scanner date", iv(TypeDate, 0), func() any { return new(recScanner) }, recScanner{utc(2000, 1, 1, 0, 0, 0, 0)}, ""},
		{"scanner time", iv(TypeTime, 0), func() any { return new(recScanner) }, recScanner{"00:00:00"}, ""},
		{"scanner NULL", nv(TypeText), func() any { return &recScanner{1} }, recScanner{nil}, ""},
		{"scanner error", iv(TypeInt4, 1), func() any { return new(failScanner) }, failScanner{}, `spi: cannot scan column 1 ("c") of type integer into *wire.failScanner: nope`},

		// Pointers to pointers.
		{"**int64 NULL", nv(TypeInt8), func() any { return ptr(ptr(int64(1))) }, (*int64)(nil), ""},
		{"**int64", iv(TypeInt8, 5), func() any { return new(*int64) }, ptr(int64(5)), ""},
		{"**int32 overflow", iv(TypeInt8, 1<<40), func() any { return new(*int32) }, (*int32)(nil), "into **int32: value 1099511627776 out of range"},
		{"**string", tv(TypeText, "s"), func() any { return new(*string) }, ptr("s"), ""},
		{"**[]byte", bv([]byte{}), func() any { return new(*[]byte) }, ptr([]byte{}), ""},
		{"**time.Time", iv(TypeTimestampTZ, 0), func() any { return new(*time.Time) }, ptr(utc(2000, 1, 1, 0, 0, 0, 0)), ""},
		{"**time.Time inf", iv(TypeTimestampTZ, math.MaxInt64), func() any { return new(*time.Time) }, (*time.Time)(nil), "into **time.Time: value is infinity"},
		{"**float64", fv(TypeFloat8, 2), func() any { return new(*float64) }, ptr(2.0), ""},
		{"**bool NULL", nv(TypeBool), func() any { return ptr(ptr(true)) }, (*bool)(nil), ""},
		{"**uint8", iv(TypeInt2, 9), func() any { return new(*uint8) }, ptr(uint8(9)), ""},
		{"***int", iv(TypeInt2, 9), func() any { return new(**int) }, ptr(ptr(9)), ""},
		{"***int NULL", nv(TypeInt2), func() any { return ptr(ptr(ptr(9))) }, (**int)(nil), ""},
		{"**NullString", tv(TypeText, "s"), func() any { return new(*sql.NullString) }, &sql.NullString{String: "s", Valid: true}, ""},
		{"**NullString NULL", nv(TypeText), func() any { return ptr(&sql.NullString{}) }, (*sql.NullString)(nil), ""},
		{"**ID", iv(TypeInt8, 4), func() any { return new(*ID) }, ptr(ID(4)), ""},
		{"**chan mismatch", iv(TypeInt8, 4), func() any { return new(*chan int) }, (*chan int)(nil), "of type bigint into **chan int"},

		// Named types.
		{"*ID", iv(TypeInt8, 77), func() any { return new(ID) }, ID(77), ""},
		{"*Small overflow", iv(TypeInt8, 1<<20), func() any { return new(Small) }, Small(0), "into *wire.Small: value 1048576 out of range"},
		{"*U8", iv(TypeInt8, 255), func() any { return new(U8) }, U8(255), ""},
		{"*U8 overflow", iv(TypeInt8, 256), func() any { return new(U8) }, U8(0), "out of range"},
		{"*U64 negative", iv(TypeInt8, -1), func() any { return new(U64) }, U64(0), "out of range"},
		{"*Ratio", fv(TypeFloat4, 0.25), func() any { return new(Ratio) }, Ratio(0.25), ""},
		{"*Ratio overflow", fv(TypeFloat8, 1e300), func() any { return new(Ratio) }, Ratio(0), "out of range"},
		{"*Name", tv(TypeText, "n"), func() any { return new(Name) }, Name("n"), ""},
		{"*Flag", iv(TypeBool, 1), func() any { return new(Flag) }, Flag(true), ""},
		{"*Raw", bv([]byte{7}), func() any { return new(Raw) }, Raw{7}, ""},
		{"*Raw NULL", nv(TypeBytea), func() any { return ptr(Raw{1}) }, Raw(nil), ""},
		{"*MyTime", iv(TypeTimestampTZ, 0), func() any { return new(MyTime) }, MyTime(utc(2000, 1, 1, 0, 0, 0, 0)), ""},
		{"*MyTime inf", iv(TypeTimestampTZ, math.MaxInt64), func() any { return new(MyTime) }, MyTime{}, "infinity"},
		{"*ID NULL", nv(TypeInt8), func() any { return new(ID) }, ID(0), "is NULL"},
		{"*Name NULL", nv(TypeText), func() any { return new(Name) }, Name(""), "is NULL"},

		// NULL into non-pointers.
		{"NULL->int64", nv(TypeInt8), func() any { return new(int64) }, int64(0),
			`spi: column 1 ("c") is NULL; scan into a pointer such as **T, *any or a sql.Null* type`},
		{"NULL->uint16", nv(TypeInt8), func() any { return new(uint16) }, uint16(0), "is NULL"},
		{"NULL->string", nv(TypeText), func() any { return new(string) }, "", "is NULL"},
		{"NULL->float32", nv(TypeFloat4), func() any { return new(float32) }, float32(0), "is NULL"},
		{"NULL->float64", nv(TypeFloat8), func() any { return new(float64) }, 0.0, "is NULL"},
		{"NULL->bool", nv(TypeBool), func() any { return new(bool) }, false, "is NULL"},
		{"NULL->time", nv(TypeTimestampTZ), func() any { return new(time.Time) }, time.Time{}, "is NULL"},

		// Unusable destinations.
		{"*chan", iv(TypeInt8, 1), func() any { return new(chan int) }, (chan int)(nil), `spi: cannot scan column 1 ("c") of type bigint into *chan int`},
		{"*struct", iv(TypeInt8, 1), func() any { return new(struct{}) }, struct{}{}, "into *struct {}"},
		{"*[]int", iv(TypeInt8, 1), func() any { return new([]int) }, []int(nil), "into *[]int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := tt.dest()
			err := Assign(dest, tt.v, Column{Name: "c", Type: tt.v.Type}, 0)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := reflect.ValueOf(dest).Elem().Interface()
			if !sameValue(got, tt.want) {
				t.Fatalf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

// sameValue is reflect.DeepEqual except that NaN equals NaN, -0 differs from
// +0, and nil and empty slices differ.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case float64:
		g, ok := got.(float64)
		return ok && (math.Float64bits(g) == math.Float64bits(w) || math.IsNaN(g) && math.IsNaN(w))
	case float32:
		g, ok := got.(float32)
		return ok && (math.Float32bits(g) == math.Float32bits(w) || g != g && w != w)
	case []byte:
		g, ok := got.([]byte)
		return ok && bytes.Equal(g, w) && (g == nil) == (w == nil)
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w) && g.Location() == w.Location()
	case MyTime:
		g, ok := got.(MyTime)
		return ok && time.Time(g).Equal(time.Time(w))
	case *time.Time:
		g, ok := got.(*time.Time)
		return ok && (g == nil) == (w == nil) && (g == nil || g.Equal(*w))
	}
	return reflect.DeepEqual(got, want)
}

func TestAssignBadDestinations(t *testing.T) {
	v := iv(TypeInt8, 1)
	c := Column{Name: "n", Type: TypeInt8}
	cases := []struct {
		dest any
		err  string
	}{
		{nil, `spi: cannot scan column 3 ("n") into a nil destination`},
		{(*int64)(nil), `spi: cannot scan column 3 ("n") into a nil *int64`},
		{(*any)(nil), "nil *interface {}"},
		{(*string)(nil), "nil *string"},
		{(*time.Time)(nil), "nil *time.Time"},
		{(*sql.NullInt64)(nil), "nil *sql.NullInt64"},
		{(**int64)(nil), "nil **int64"},
		{(*ID)(nil), "nil *wire.ID"},
		{int64(0), `spi: cannot scan column 3 ("n") of type bigint into int64: destination is not a pointer`},
	}
	for _, tt := range cases {
		err := Assign(tt.dest, v, c, 2)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%T: err = %v, want containing %q", tt.dest, err, tt.err)
		}
	}
}

// selfPtr is a pointer to itself: following it never ends.
type selfPtr *selfPtr

func TestAssignSelfPointer(t *testing.T) {
	var p selfPtr
	err := Assign(&p, iv(TypeInt8, 1), Column{Name: "n"}, 0)
	if err == nil || !strings.Contains(err.Error(), "levels of pointers") {
		t.Fatalf("err = %v", err)
	}
	if _, err := EncodeParams([]any{selfPtr(&p)}); err != nil {
		t.Fatalf("nil-terminated self pointer: %v", err)
	}
	p = &p // a cycle
	if _, err := EncodeParams([]any{p}); err == nil || !strings.Contains(err.Error(), "unsupported Go type wire.selfPtr") {
		t.Fatalf("cycle: err = %v", err)
	}
}

func TestAssignCopies(t *testing.T) {
	buf := []byte("abc")
	var s string
	var b []byte
	var a any
	for _, d := range []any{&s, &b, &a} {
		if err := Assign(d, Value{Kind: KindBinary, Type: TypeBytea, B: buf}, Column{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	buf[0] = 'X'
	if s != "abc" || string(b) != "abc" || string(a.([]byte)) != "abc" {
		t.Fatalf("destinations alias the buffer: %q %q %q", s, b, a)
	}
}

func TestErrorNamesColumn(t *testing.T) {
	// Index is 0-based in, 1-based out; the name is quoted.
	err := Assign(new(time.Time), iv(TypeInt4, 1), Column{Name: `we"ird`, Type: TypeInt4}, 4)
	want := `spi: cannot scan column 5 ("we\"ird") of type integer into *time.Time`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	err = Assign(new(int), Value{Kind: KindInt64, Type: 4242, I: 1 << 40}, Column{Name: "x", Type: 4242}, 0)
	if err != nil {
		t.Fatalf("unknown integer type: %v", err)
	}
	err = Assign(new(time.Time), Value{Kind: KindInt64, Type: 4242}, Column{Name: "x", Type: 4242}, 0)
	if err == nil || !strings.Contains(err.Error(), "of type type with OID 4242 into *time.Time") {
		t.Fatalf("err = %v", err)
	}
}

// ---------------------------------------------------------------------------
// Fuzzing

func FuzzDecodeResult(f *testing.F) {
	cols, rows := sampleResult()
	valid := mustAppend(f, cols, rows)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(make([]byte, 12))
	f.Add(mustAppend(f, nil, [][]Value{{}, {}}))
	f.Add(mustAppend(f, []Column{col(TypeDate, "d"), col(TypeTime, "t")}, [][]Value{{iv(TypeDate, -1), iv(TypeTime, -1)}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if !exercise(data) {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		r, _ := DecodeResult(data)
		if r.NumRows > 10000 {
			return
		}
		rows := make([][]Value, r.NumRows)
		for i := range rows {
			rows[i] = r.Row(i, nil)
		}
		again, err := AppendResult(nil, r.Columns, rows)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n% x\n% x", data, again)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(0), 0.0, "", []byte(nil))
	f.Add(int64(math.MinInt64), math.NaN(), "héllo", []byte{0})
	f.Add(int64(math.MaxInt64), math.Inf(-1), "a\x00b", []byte{})
	f.Add(int64(1<<40), 1e300, "世界", []byte("x"))
	f.Add(int64(-211813488000000000), 1234567.0, "t", []byte{255})
	f.Add(int64(1<<53+1), 5e-324, "false", []byte{})
	f.Fuzz(func(t *testing.T, i int64, fl float64, s string, b []byte) {
		if b == nil {
			b = []byte{}
		}
		cols := []Column{
			col(TypeInt8, "i"), col(TypeFloat8, "f"), col(TypeText, "s"), col(TypeBytea, "b"),
			col(TypeNumeric, "n"), col(TypeTimestampTZ, "ts"), col(TypeFloat4, "f4"),
		}
		row := []Value{
			iv(TypeInt8, i), fv(TypeFloat8, fl), tv(TypeText, s), bv(b),
			tv(TypeNumeric, strconv.FormatInt(i, 10)), iv(TypeTimestampTZ, i), fv(TypeFloat4, float64(float32(fl))),
		}
		nulls := make([]Value, len(cols))
		buf, err := AppendResult(nil, cols, [][]Value{row, nulls})
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeResult(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := r.Row(0, nil)
		assign := func(dest any, c int) error { return Assign(dest, got[c], r.Columns[c], c) }

		var i64 int64
		if err := assign(&i64, 0); err != nil || i64 != i {
			t.Fatalf("int64: %d, %v", i64, err)
		}
		if err := assign(&i64, 4); err != nil || i64 != i {
			t.Fatalf("numeric -> int64: %d, %v", i64, err)
		}
		var i32 int32
		err = assign(&i32, 0)
		if fits := i >= math.MinInt32 && i <= math.MaxInt32; fits != (err == nil) || fits && int64(i32) != i {
			t.Fatalf("int32 from %d: %d, %v", i, i32, err)
		}
		var u64 uint64
		if err = assign(&u64, 0); (i >= 0) != (err == nil) || err == nil && u64 != uint64(i) {
			t.Fatalf("uint64 from %d: %d, %v", i, u64, err)
		}
		var f64 float64
		if err = assign(&f64, 0); err == nil && int64(f64) != i {
			t.Fatalf("float64 from %d: %v", i, f64)
		}
		var str string
		if err := assign(&str, 0); err != nil || str != strconv.FormatInt(i, 10) {
			t.Fatalf("string from int: %q, %v", str, err)
		}
		if nat, err := got[0].Natural(); err != nil || nat != i {
			t.Fatalf("Natural: %v, %v", nat, err)
		}

		if err := assign(&f64, 1); err != nil || !sameValue(f64, fl) {
			t.Fatalf("float64: %v, %v", f64, err)
		}
		// PostgreSQL-style text of a float reads back exactly.
		if err := assign(&str, 1); err != nil {
			t.Fatal(err)
		}
		if back, err := strconv.ParseFloat(str, 64); err != nil || !sameValue(back, fl) {
			t.Fatalf("float %v -> %q -> %v, %v", fl, str, back, err)
		}
		if err := assign(&str, 6); err != nil {
			t.Fatal(err)
		}
		if back, err := strconv.ParseFloat(str, 32); err != nil || !sameValue(float32(back), float32(fl)) {
			t.Fatalf("float4 %v -> %q -> %v, %v", float32(fl), str, back, err)
		}

		if err := assign(&str, 2); err != nil || str != s {
			t.Fatalf("string: %q, %v", str, err)
		}
		var bs []byte
		if err := assign(&bs, 2); err != nil || string(bs) != s {
			t.Fatalf("text -> []byte: %q, %v", bs, err)
		}
		if err := assign(&bs, 3); err != nil || !bytes.Equal(bs, b) || bs == nil {
			t.Fatalf("[]byte: %v, %v", bs, err)
		}
		if err := assign(&str, 3); err != nil || str != string(b) {
			t.Fatalf("bytea -> string: %q, %v", str, err)
		}

		var tm time.Time
		err = assign(&tm, 5)
		switch {
		case i == math.MaxInt64 || i == math.MinInt64:
			if err == nil {
				t.Fatal("infinity scanned into time.Time")
			}
		case err != nil:
			t.Fatal(err)
		case i >= minTimestampSec*1e6 && i < endTimestampSec*1e6:
			if us, ok := timeToMicros(tm); !ok || us != i {
				t.Fatalf("timestamp %d -> %v -> %d, %v", i, tm, us, ok)
			}
		}
		if err := assign(&str, 5); err != nil {
			t.Fatal(err)
		}

		// The same values as parameters.
		pbuf, err := EncodeParams([]any{i, fl, s, b})
		if strings.IndexByte(s, 0) >= 0 {
			if err == nil {
				t.Fatal("NUL accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ps := decodeParams(t, pbuf)
		want := []param{pInt(TypeInt8, i), pFloat(TypeFloat8, fl), pText(s), pBin(b)}
		for k := range want {
			if !ps[k].equal(want[k]) {
				t.Fatalf("$%d: %+v, want %+v", k+1, ps[k], want[k])
			}
		}

		// The NULL row.
		got = r.Row(1, got)
		var a any = 1
		var p *int64 = &i64
		if assign(&a, 0) != nil || a != nil || assign(&p, 0) != nil || p != nil || assign(&i64, 0) == nil {
			t.Fatal("NULL handling")
		}
	})
}

// ---------------------------------------------------------------------------
// Benchmarks and examples

func benchResult(b *testing.B) *Result {
	cols := []Column{col(TypeInt8, "id"), col(TypeFloat8, "score"), col(TypeText, "name"), col(TypeTimestampTZ, "at")}
	rows := make([][]Value, 1000)
	for i := range rows {
		rows[i] = []Value{iv(TypeInt8, int64(i)), fv(TypeFloat8, float64(i)/3), tv(TypeText, "name-"+strconv.Itoa(i)), iv(TypeTimestampTZ, int64(i)*1e6)}
	}
	r, err := DecodeResult(mustAppend(b, cols, rows))
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkDecodeRow measures Row alone: one op is one 4-column row.
func BenchmarkDecodeRow(b *testing.B) {
	r := benchResult(b)
	var row []Value
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		row = r.Row(i, row)
		if i++; i == r.NumRows {
			i = 0
		}
	}
}

// BenchmarkScanRow adds Assign into typed destinations; the string copy is
// the only allocation.
func BenchmarkScanRow(b *testing.B) {
	r := benchResult(b)
	var (
		row   []Value
		id    int64
		score float64
		name  string
		at    time.Time
	)
	dests := []any{&id, &score, &name, &at}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		row = r.Row(i, row)
		for c, d := range dests {
			if err := Assign(d, row[c], r.Columns[c], c); err != nil {
				b.Fatal(err)
			}
		}
		if i++; i == r.NumRows {
			i = 0
		}
	}
}

func BenchmarkDecodeResult(b *testing.B) {
	r := benchResult(b)
	rows := make([][]Value, r.NumRows)
	for i := range rows {
		rows[i] = r.Row(i, nil)
	}
	buf := mustAppend(b, r.Columns, rows)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeResult(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleDecodeResult() {
	// The buffer the C side would send for
	//   SELECT 42::int4 AS n, NULL::text AS note, 'infinity'::timestamptz AS t
	buf, _ := AppendResult(nil,
		[]Column{{"n", TypeInt4}, {"note", TypeText}, {"t", TypeTimestampTZ}},
		[][]Value{{{Kind: KindInt64, I: 42}, {Kind: KindNull}, {Kind: KindInt64, I: math.MaxInt64}}})
	r, err := DecodeResult(buf)
	if err != nil {
		panic(err)
	}
	row := r.Row(0, nil)

	var n int64
	var note *string
	var t string
	for c, dest := range []any{&n, &note, &t} {
		if err := Assign(dest, row[c], r.Columns[c], c); err != nil {
			panic(err)
		}
	}
	fmt.Println(n, note, t)

	var tm time.Time
	fmt.Println(Assign(&tm, row[2], r.Columns[2], 2))
	// Output:
	// 42 <nil> infinity
	// spi: cannot scan column 3 ("t") of type timestamp with time zone into *time.Time: value is infinity, which time.Time cannot represent (scan into *string or *any)
}

// TestResultScanMatchesAssign: Result.Scan's direct stores give what
// Row + Assign give, values and errors, for every pairing of these cells
// and destinations.
func TestResultScanMatchesAssign(t *testing.T) {
	cols := []Column{{"i8", TypeInt8}, {"i4", TypeInt4}, {"t", TypeText}, {"ts", TypeTimestampTZ},
		{"f", TypeFloat8}, {"b", TypeBool}, {"d", TypeDate}, {"n", TypeNumeric}, {"by", TypeBytea}}
	rows := [][]Value{
		{{Kind: KindInt64, I: 1 << 40}, {Kind: KindInt64, I: -70000}, {Kind: KindText, B: []byte("héllo")},
			{Kind: KindInt64, I: -1}, {Kind: KindFloat64, F: 2.5}, {Kind: KindInt64, I: 1},
			{Kind: KindInt64, I: 9000}, {Kind: KindText, B: []byte("42.00")}, {Kind: KindBinary, B: []byte{0, 1}}},
		{{Kind: KindNull}, {Kind: KindInt64, I: 5}, {Kind: KindNull}, {Kind: KindInt64, I: math.MaxInt64},
			{Kind: KindNull}, {Kind: KindInt64, I: 0}, {Kind: KindNull}, {Kind: KindNull}, {Kind: KindNull}},
	}
	buf, err := AppendResult(nil, cols, rows)
	if err != nil {
		t.Fatal(err)
	}
	res, err := DecodeResult(buf)
	if err != nil {
		t.Fatal(err)
	}
	dests := []func() any{
		func() any { return new(int64) }, func() any { return new(int) }, func() any { return new(int32) },
		func() any { return new(string) }, func() any { return new(float64) }, func() any { return new(bool) },
		func() any { return new(time.Time) }, func() any { return new(*int64) },
	}
	for r := range rows {
		vals := res.Row(r, nil)
		for c := range cols {
			for _, mk := range dests {
				want, got := mk(), mk()
				werr := Assign(want, vals[c], cols[c], c)
				dest := make([]any, len(cols))
				for k := range dest {
					dest[k] = new(any)
				}
				dest[c] = got
				gerr := res.Scan(r, dest)
				if fmt.Sprint(werr) != fmt.Sprint(gerr) {
					t.Errorf("row %d col %s into %T: error %v, want %v", r, cols[c].Name, got, gerr, werr)
					continue
				}
				if !reflect.DeepEqual(want, got) {
					t.Errorf("row %d col %s into %T: %v, want %v", r, cols[c].Name, got, got, want)
				}
			}
		}
	}
}

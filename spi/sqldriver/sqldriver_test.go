package sqldriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
)

type valuer struct{ v driver.Value }

func (v valuer) Value() (driver.Value, error) { return v.v, nil }

type myInt int32
type myString string

// TestConvertArgs: Go values fit the parameter types of a plan as pgx would
// fit them; what spi binds as it is stays as it is.
func TestConvertArgs(t *testing.T) {
	when := time.Date(2024, 2, 29, 23, 30, 0, 123456000, time.FixedZone("X", -5*3600))
	s := "s"
	var nilp *string
	var nilValuer *valuer
	cases := []struct {
		oid  pggo.Oid
		in   any
		want any
	}{
		{oidInt4, 42, int64(42)},
		{oidInt8, myInt(7), int64(7)},
		{oidNumeric, 42, "42"},
		{oidNumeric, 100.25, "100.25"},
		{oidNumeric, math.Inf(-1), "-Infinity"},
		{oidNumeric, math.NaN(), "NaN"},
		{oidFloat8, float32(1.5), float32(1.5)},
		{oidFloat8, 2, "2"},
		{25, true, "true"},
		{oidBool, true, true},
		{oidTimestampTZ, when, when},
		{oidDate, when, "2024-02-29"},
		{oidDate, time.Date(-1, 3, 1, 0, 0, 0, 0, time.UTC), "0002-03-01 BC"},
		{25, when, "2024-02-29 23:30:00.123456-05:00"},
		{oidJSONB, []byte(`{"a":1}`), `{"a":1}`},
		{oidBytea, []byte{0, 1}, []byte{0, 1}},
		{25, &s, "s"},
		{25, nilp, nil},
		{25, nilValuer, nil},
		{oidNumeric, valuer{int64(5)}, "5"},
		{25, myString("x"), "x"},
		{1007, []int32{1, 2}, []int32{1, 2}}, // left to spi (an array)
		{1186, time.Second, time.Second},     // left to spi (an interval)
		{oidInt8, uint64(math.MaxInt64), int64(math.MaxInt64)},
	}
	for _, c := range cases {
		got, err := convertArgs([]pggo.Oid{c.oid}, []any{c.in})
		if err != nil {
			t.Errorf("%T %v as %d: %v", c.in, c.in, c.oid, err)
			continue
		}
		if !reflect.DeepEqual(got[0], c.want) {
			t.Errorf("%T %v as %d: got %T %#v, want %T %#v", c.in, c.in, c.oid, got[0], got[0], c.want, c.want)
		}
	}
	if _, err := convertArgs([]pggo.Oid{oidInt8}, []any{uint64(math.MaxUint64)}); err == nil || !strings.Contains(err.Error(), "$1") {
		t.Errorf("uint64 above MaxInt64: %v", err)
	}
	if _, err := convertArgs([]pggo.Oid{oidInt8, oidInt8}, []any{1}); err == nil {
		t.Error("too few arguments accepted")
	}
}

func TestCheckNamedValue(t *testing.T) {
	c := &conn{}
	for _, v := range []any{int32(1), uint8(2), time.Second, []string{"a"}, nil, struct{}{}} {
		nv := driver.NamedValue{Ordinal: 1, Value: v}
		if err := c.CheckNamedValue(&nv); err != nil || !reflect.DeepEqual(nv.Value, v) {
			t.Errorf("%T: %v, value now %#v", v, err, nv.Value)
		}
	}
	if err := c.CheckNamedValue(&driver.NamedValue{Name: "id", Ordinal: 1, Value: 1}); err == nil {
		t.Error("a named argument was accepted")
	}
	if err := c.CheckNamedValue(&driver.NamedValue{Ordinal: 1, Value: sql.Out{Dest: new(int)}}); err == nil {
		t.Error("sql.Out was accepted")
	}
}

// TestOutsidePostgres: what needs PostgreSQL says so; validation that does not
// comes first.
func TestOutsidePostgres(t *testing.T) {
	if _, err := sql.Open(DriverName, "host=localhost"); err == nil {
		t.Error("a data source name was accepted")
	}
	db := OpenDB()
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "SELECT 1"); !errors.Is(err, pg.ErrNotInPostgres) {
		t.Errorf("Exec outside PostgreSQL: %v", err)
	}
	if _, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable}); err == nil || !strings.Contains(err.Error(), "Serializable") {
		t.Errorf("BeginTx(Serializable): %v", err)
	}
	if _, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("BeginTx(ReadOnly): %v", err)
	}
}

func TestTypeNames(t *testing.T) {
	for oid, want := range map[pggo.Oid]string{20: "INT8", 1184: "TIMESTAMPTZ", 1700: "NUMERIC", 1009: "_TEXT", 2950: "UUID"} {
		if typeNames[oid] != want {
			t.Errorf("OID %d: %q, want %q", oid, typeNames[oid], want)
		}
	}
}

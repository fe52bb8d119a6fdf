package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Column describes one result column: its name as PostgreSQL reports it and
// its type OID, which decides how cells are converted.
type Column struct {
	Name string
	Type uint32
}

// Value is one decoded cell. Which field holds the data depends on Kind: I for
// KindInt64, F for KindFloat64, B for KindText and KindBinary; none for
// KindNull. Type is the column's type OID.
//
// B aliases the result buffer (no copy per cell); its capacity is clipped to
// its length so appending to it never overwrites the buffer. Natural and
// Assign copy what they keep.
type Value struct {
	Kind byte
	Type uint32
	I    int64
	F    float64
	B    []byte
}

// Result is a decoded result buffer. DecodeResult checks the whole buffer once,
// so that Row can then decode cells without further validation or allocation.
type Result struct {
	Columns []Column
	NumRows int

	buf    []byte
	rowOff []int // start of each row in buf; nil when there are no columns
}

// ExpectedKind is the kind the C side sends for non-NULL cells of a column of
// type oid, per the package documentation. DecodeResult rejects any other
// kind, so conversions can trust that, say, an int4 cell holds an integer.
func ExpectedKind(oid uint32) byte {
	switch oid {
	case TypeBool, TypeInt2, TypeInt4, TypeInt8, TypeOid,
		TypeDate, TypeTime, TypeTimestamp, TypeTimestampTZ:
		return KindInt64
	case TypeFloat4, TypeFloat8:
		return KindFloat64
	case TypeBytea:
		return KindBinary
	}
	return KindText
}

// decoder reads little-endian fields with bounds checks; the first failure
// sticks in err and later reads return zero.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("wire: malformed result: truncated at byte %d reading %s (buffer is %d bytes)", d.off, what, len(d.buf))
	}
}

func (d *decoder) u8(what string) byte {
	if d.err != nil || len(d.buf)-d.off < 1 {
		d.fail(what)
		return 0
	}
	v := d.buf[d.off]
	d.off++
	return v
}

func (d *decoder) u32(what string) uint32 {
	if d.err != nil || len(d.buf)-d.off < 4 {
		d.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint32(d.buf[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64(what string) uint64 {
	if d.err != nil || len(d.buf)-d.off < 8 {
		d.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.buf[d.off:])
	d.off += 8
	return v
}

func (d *decoder) skip(n uint64, what string) {
	if d.err != nil || uint64(len(d.buf)-d.off) < n {
		d.fail(what)
		return
	}
	d.off += int(n)
}

// bytes returns the next n bytes, with capacity clipped to n.
func (d *decoder) bytes(n uint32, what string) []byte {
	start := d.off
	d.skip(uint64(n), what)
	if d.err != nil {
		return nil
	}
	return d.buf[start:d.off:d.off]
}

// DecodeResult decodes and validates a result buffer produced by the C side
// (or AppendResult). It checks every length against the buffer, every cell
// kind against its column type (ExpectedKind, or NULL), and that nothing
// trails the last row; a malformed buffer is an error, never a panic. The
// Result keeps buf without copying it: buf must not change while the Result or
// any Value from it is in use.
func DecodeResult(buf []byte) (*Result, error) {
	d := &decoder{buf: buf}
	ncols := d.u32("column count")
	if d.err != nil {
		return nil, d.err
	}
	// Each column header takes at least 8 bytes: refuse counts the buffer
	// cannot hold before allocating for them.
	if uint64(ncols) > uint64(len(buf)-d.off)/8 {
		return nil, fmt.Errorf("wire: malformed result: %d columns cannot fit in %d bytes", ncols, len(buf))
	}
	r := &Result{Columns: make([]Column, ncols), buf: buf}
	var kb [16]byte // most results: no allocation for the kinds
	kinds := kb[:0]
	if ncols > uint32(len(kb)) {
		kinds = make([]byte, 0, ncols)
	}
	kinds = kinds[:ncols]
	for c := range r.Columns {
		oid := d.u32("column type")
		n := d.u32("column name length")
		name := d.bytes(n, "column name")
		if d.err != nil {
			return nil, d.err
		}
		r.Columns[c] = Column{Name: string(name), Type: oid}
		kinds[c] = ExpectedKind(oid)
	}
	nrows := d.u64("row count")
	if d.err != nil {
		return nil, d.err
	}
	if nrows > math.MaxInt {
		return nil, fmt.Errorf("wire: malformed result: row count %d is too large", nrows)
	}
	r.NumRows = int(nrows)
	if ncols == 0 {
		// Rows without columns (SELECT FROM t) take no bytes at all.
		if d.off != len(buf) {
			return nil, fmt.Errorf("wire: malformed result: %d bytes after a result with no columns", len(buf)-d.off)
		}
		return r, nil
	}
	// Every cell takes at least its kind byte.
	if nrows > uint64(len(buf)-d.off)/uint64(ncols) {
		return nil, fmt.Errorf("wire: malformed result: %d rows of %d columns cannot fit in %d bytes", nrows, ncols, len(buf))
	}
	r.rowOff = make([]int, nrows)
	// One tight pass first; only a malformed buffer takes the careful pass
	// below, which says where and what.
	if off, ok := scanCells(buf, d.off, kinds, r.rowOff); ok && off == len(buf) {
		return r, nil
	}
	for i := range r.rowOff {
		r.rowOff[i] = d.off
		for c, want := range kinds {
			kind := d.u8("cell kind")
			if d.err != nil {
				return nil, d.err
			}
			if kind != KindNull && kind != want {
				return nil, fmt.Errorf("wire: malformed result: row %d column %d (type %s): cell kind %d, want %d or NULL", i+1, c+1, FormatType(r.Columns[c].Type), kind, want)
			}
			switch kind {
			case KindInt64, KindFloat64:
				d.skip(8, "cell value")
			case KindText, KindBinary:
				d.skip(uint64(d.u32("cell length")), "cell bytes")
			}
			if d.err != nil {
				return nil, d.err
			}
		}
	}
	if d.off != len(buf) {
		return nil, fmt.Errorf("wire: malformed result: %d bytes after the last row", len(buf)-d.off)
	}
	return r, nil
}

// scanCells walks every cell from off, recording where each row starts,
// and checks lengths and kinds as DecodeResult does; ok is false at the
// first problem (DecodeResult then finds and reports it).
func scanCells(buf []byte, off int, kinds []byte, rowOff []int) (int, bool) {
	n := len(buf)
	for i := range rowOff {
		rowOff[i] = off
		for _, want := range kinds {
			if off >= n {
				return off, false
			}
			kind := buf[off]
			off++
			if kind == KindNull {
				continue
			}
			if kind != want {
				return off, false
			}
			switch kind {
			case KindInt64, KindFloat64:
				if n-off < 8 {
					return off, false
				}
				off += 8
			default: // KindText, KindBinary
				if n-off < 4 {
					return off, false
				}
				l := uint64(binary.LittleEndian.Uint32(buf[off:]))
				off += 4
				if uint64(n-off) < l {
					return off, false
				}
				off += int(l)
			}
		}
	}
	return off, true
}

// cell decodes the cell at off of a validated buffer and returns the
// offset after it.
func cell(buf []byte, off int, typ uint32) (Value, int) {
	v := Value{Kind: buf[off], Type: typ}
	off++
	switch v.Kind {
	case KindInt64:
		v.I = int64(binary.LittleEndian.Uint64(buf[off:]))
		off += 8
	case KindFloat64:
		v.F = math.Float64frombits(binary.LittleEndian.Uint64(buf[off:]))
		off += 8
	case KindText, KindBinary:
		n := int(binary.LittleEndian.Uint32(buf[off:]))
		off += 4
		v.B = buf[off : off+n : off+n]
		off += n
	}
	return v, off
}

// Scan stores row i straight into dest, one destination per column, as
// Assign would, without decoding the row into Values first: the common
// destinations (*int64, *string, *time.Time, ...) of matching columns are
// stored directly, anything else goes through Assign. It panics if i is out
// of range or dest does not have one entry per column.
func (r *Result) Scan(i int, dest []any) error {
	if i < 0 || i >= r.NumRows {
		panic(fmt.Sprintf("wire: row %d out of range [0,%d)", i, r.NumRows))
	}
	if len(r.Columns) == 0 {
		return nil
	}
	buf, off := r.buf, r.rowOff[i]
	for c, d := range dest {
		var v Value
		v, off = cell(buf, off, r.Columns[c].Type)
		if storeDirect(d, &v) {
			continue
		}
		if err := Assign(d, v, r.Columns[c], c); err != nil {
			return err
		}
	}
	return nil
}

// storeDirect stores v in d when that needs no conversion beyond what the
// column type implies, and reports whether it did; every other case
// (NULL, text to be parsed, range checks that fail, nil pointers) is left
// to Assign, which also words the errors.
func storeDirect(d any, v *Value) bool {
	switch d := d.(type) {
	case *int64:
		if d != nil && v.Kind == KindInt64 && isInteger(v.Type) {
			*d = v.I
			return true
		}
	case *int:
		if d != nil && v.Kind == KindInt64 && isInteger(v.Type) {
			*d = int(v.I)
			return true
		}
	case *int32:
		if d != nil && v.Kind == KindInt64 && isInteger(v.Type) && v.I >= math.MinInt32 && v.I <= math.MaxInt32 {
			*d = int32(v.I)
			return true
		}
	case *string:
		if d != nil && (v.Kind == KindText || v.Kind == KindBinary) {
			*d = string(v.B)
			return true
		}
	case *float64:
		if d != nil && v.Kind == KindFloat64 {
			*d = v.F
			return true
		}
	case *bool:
		if d != nil && v.Kind == KindInt64 && v.Type == TypeBool {
			*d = v.I != 0
			return true
		}
	case *time.Time:
		if d != nil && v.Kind == KindInt64 && (v.Type == TypeTimestampTZ || v.Type == TypeTimestamp) &&
			v.I != math.MaxInt64 && v.I != math.MinInt64 {
			sec, us := v.I/usPerSec, v.I%usPerSec
			if us < 0 { // floor: -1µs is 1999-12-31 23:59:59.999999
				sec--
				us += usPerSec
			}
			*d = time.Unix(pgEpochUnix+sec, us*1000).UTC()
			return true
		}
	}
	return false
}

// Row decodes row i (0-based) into dst, reusing its storage, and returns it
// with one Value per column. Passing the previous call's result as dst makes
// sequential iteration allocation-free. It panics if i is out of range, like
// a slice index.
func (r *Result) Row(i int, dst []Value) []Value {
	if i < 0 || i >= r.NumRows {
		panic(fmt.Sprintf("wire: row %d out of range [0,%d)", i, r.NumRows))
	}
	dst = dst[:0]
	if len(r.Columns) == 0 {
		return dst
	}
	buf, off := r.buf, r.rowOff[i]
	for _, col := range r.Columns {
		// The buffer was validated: every read in cell is in bounds.
		var v Value
		v, off = cell(buf, off, col.Type)
		dst = append(dst, v)
	}
	return dst
}

// AppendResult appends a result buffer in the C side's format to dst: the
// column headers, then rows, each with one Value per column. Only Kind and the
// field it selects are used; a Value's Type is ignored (the column's counts).
// It exists for tests and fuzzing, which need the buffers the server would
// produce; it checks row widths and kinds so that a test cannot build a buffer
// that DecodeResult would reject by accident.
func AppendResult(dst []byte, cols []Column, rows [][]Value) ([]byte, error) {
	if uint64(len(cols)) > math.MaxUint32 {
		return nil, errors.New("wire: too many columns")
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(cols)))
	for _, c := range cols {
		if uint64(len(c.Name)) > math.MaxUint32 {
			return nil, errors.New("wire: column name too long")
		}
		dst = binary.LittleEndian.AppendUint32(dst, c.Type)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(c.Name)))
		dst = append(dst, c.Name...)
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(rows)))
	for i, row := range rows {
		if len(row) != len(cols) {
			return nil, fmt.Errorf("wire: row %d has %d values for %d columns", i+1, len(row), len(cols))
		}
		for c, v := range row {
			if v.Kind != KindNull && v.Kind != ExpectedKind(cols[c].Type) {
				return nil, fmt.Errorf("wire: row %d column %d: kind %d for type %s, want %d", i+1, c+1, v.Kind, FormatType(cols[c].Type), ExpectedKind(cols[c].Type))
			}
			dst = append(dst, v.Kind)
			switch v.Kind {
			case KindInt64:
				dst = binary.LittleEndian.AppendUint64(dst, uint64(v.I))
			case KindFloat64:
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.F))
			case KindText, KindBinary:
				if uint64(len(v.B)) > math.MaxUint32 {
					return nil, fmt.Errorf("wire: row %d column %d: value too long", i+1, c+1)
				}
				dst = binary.LittleEndian.AppendUint32(dst, uint32(len(v.B)))
				dst = append(dst, v.B...)
			}
		}
	}
	return dst, nil
}

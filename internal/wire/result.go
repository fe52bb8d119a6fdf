package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
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
	kinds := make([]byte, ncols)
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
		v := Value{Kind: buf[off], Type: col.Type}
		off++
		// The buffer was validated: every read below is in bounds.
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

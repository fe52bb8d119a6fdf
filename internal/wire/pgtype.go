package wire

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The long tail of PostgreSQL types (numeric, uuid, interval, json, arrays,
// ranges, network types, ...) goes through jackc/pgx's pgtype codecs, in
// PostgreSQL's text format: the C side sends each such value as its type's
// text output and reads parameters with the type's input function. The fast
// path (integers, floats, bool, text, bytea, dates and timestamps) never
// gets here.
var (
	typesMu   sync.Mutex // pgtype.Map memoizes plans: not safe for concurrent use
	typesOnce sync.Once
	typesMapV *pgtype.Map
)

// typesMap is built on first use: it is large, and a worker that never
// meets a long-tail type should not pay for it at start-up.
func typesMap() *pgtype.Map {
	typesOnce.Do(func() { typesMapV = pgtype.NewMap() })
	return typesMapV
}

// longTail reports whether pgtype knows oid and it is not on the fast path.
func longTail(oid uint32) bool {
	if ExpectedKind(oid) != KindText {
		return false
	}
	switch oid {
	case TypeText, TypeVarchar, TypeBPChar, TypeName, TypeChar, TypeUnknown:
		return false
	}
	typesMu.Lock()
	defer typesMu.Unlock()
	_, ok := typesMap().TypeForOID(oid)
	return ok
}

// scanLongTail scans the text form of a value of type oid into dest.
func scanLongTail(oid uint32, src []byte, dest any) error {
	typesMu.Lock()
	defer typesMu.Unlock()
	return typesMap().Scan(oid, pgtype.TextFormatCode, src, dest)
}

// naturalLongTail decodes the text form of a value of type oid into the Go
// type pgx would give (pgtype.Numeric, [16]byte, []any, map[string]any, ...).
func naturalLongTail(oid uint32, src []byte) (any, error) {
	typesMu.Lock()
	defer typesMu.Unlock()
	t, ok := typesMap().TypeForOID(oid)
	if !ok {
		return string(src), nil
	}
	return t.Codec.DecodeValue(typesMap(), oid, pgtype.TextFormatCode, src)
}

// encodeLongTail encodes a Go value pgtype knows (e.g. []int64, [16]byte,
// netip.Prefix, time.Duration) as text of the type pgtype chooses for it.
func encodeLongTail(v any) (oid uint32, text []byte, ok bool, err error) {
	typesMu.Lock()
	defer typesMu.Unlock()
	if d, isDur := v.(time.Duration); isDur {
		v = pgtype.Interval{Microseconds: d.Microseconds(), Valid: true}
	}
	t, found := typesMap().TypeForValue(v)
	if !found {
		return 0, nil, false, nil
	}
	buf, err := typesMap().Encode(t.OID, pgtype.TextFormatCode, v, nil)
	if err != nil {
		return 0, nil, true, err
	}
	if buf == nil {
		return t.OID, nil, true, nil // encodes as NULL
	}
	return t.OID, buf, true, nil
}

// appendLongTail appends a parameter pgtype can encode, or reports !ok.
func appendLongTail(buf []byte, a any, pos int) ([]byte, bool, error) {
	oid, text, ok, err := encodeLongTail(a)
	if !ok {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("spi: parameter $%d: %v", pos, err)
	}
	if text == nil {
		return appendHeader(buf, KindNull, oid), true, nil
	}
	buf = appendHeader(buf, KindText, oid)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(text)))
	return append(buf, text...), true, nil
}

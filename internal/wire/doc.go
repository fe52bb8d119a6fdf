// Package wire is the byte format that carries SPI parameters from Go to C and
// result rows from C to Go in one buffer per call, so that a statement costs
// one cgo crossing instead of one per value. It is pure Go (no cgo), so it can
// be unit-tested and fuzzed without a server.
//
// All integers are little-endian (the only byte order pggo supports).
//
// Parameters (Go -> C), one record per argument, in order:
//
//	u8  kind      KindNull, KindInt64, KindFloat64, KindText, KindBinary or KindTime
//	u32 type oid  the type declared to the parser; 0 = let PostgreSQL infer it
//	payload       KindInt64/KindFloat64: 8 bytes; KindText/KindBinary: u32 length + bytes;
//	              KindTime: i64 microseconds since 2000-01-01 UTC + i32 zone offset in seconds; KindNull: none
//
// Declared types: int, int64 -> int8 (20); int32 -> int4 (23); int16 -> int2 (21);
// bool -> bool (16, KindInt64 0/1); float64 -> float8 (701); float32 -> float4 (700,
// sent as KindFloat64); time.Time -> KindTime with oid 0, so that the statement
// decides its type: timestamptz gets the instant, timestamp the wall clock of
// the time's own Location, date that wall clock's day (the server's TimeZone
// plays no part, on every path); []byte -> bytea (17, KindBinary); string ->
// KindText with oid 0 (the C side runs the input function of whatever type the
// parser inferred, so "42" works for an int4 column); nil (and nil pointers) ->
// KindNull with oid 0.
//
// Result (C -> Go):
//
//	u32 ncols
//	ncols x { u32 type oid, u32 name length, name bytes }
//	u64 nrows
//	nrows x ncols cells: u8 kind, then the payload as for parameters
//
// Cell kinds by column type: bool, int2, int4, int8, oid -> KindInt64; float4,
// float8 -> KindFloat64; date -> KindInt64 days since 2000-01-01;
// timestamp, timestamptz -> KindInt64 microseconds since 2000-01-01 (math.MaxInt64 =
// infinity, math.MinInt64 = -infinity); time -> KindInt64 microseconds since
// midnight; bytea -> KindBinary (raw bytes); text, varchar, bpchar, name, json,
// xml -> KindText (raw bytes); every other type -> KindText holding PostgreSQL's
// text output of the value.
package wire

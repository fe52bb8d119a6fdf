package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pggo/pggo/internal/wire"
	"github.com/pggo/pggo/pgtest"
)

// The loader's parameter path (decoding the wire format, param_datum, the
// types' input functions) driven with random kinds, declared types, target
// types and bytes, inside a real server: testext_param_roundtrip runs
// exactly the code a statement's arguments go through. Any outcome but a
// value or an ERROR (a crashed backend, a lost connection) fails.
//
// make test runs TestParamPathRandom (a fixed number of inputs) and the
// seeds of FuzzParamPath; make soak runs the fuzzer for a while:
//
//	go test -run '^$' -fuzz FuzzParamPath -fuzztime 60s ./internal/integration

// fuzzTypes are the target types: every fast path of param_datum, and
// input functions of many shapes.
var fuzzTypes = []uint32{
	16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 142, 700, 701, 705, 790, 869, 1042, 1043,
	1082, 1083, 1114, 1184, 1186, 1266, 1560, 1700, 2950, 3802, 600, 1007, 1009, 3904, 3614,
}

// fuzzKinds covers the wire kinds and one past them.
const fuzzKinds = 7

// paramBuffer builds one parameter record; raw sends payload as the whole
// buffer, malformed or not.
func paramBuffer(raw bool, kind uint8, declared uint32, payload []byte) []byte {
	if raw {
		return payload
	}
	k := kind % fuzzKinds
	buf := []byte{k}
	buf = binary.LittleEndian.AppendUint32(buf, declared)
	fixed := func(n int) []byte {
		b := make([]byte, n)
		copy(b, payload)
		return b
	}
	switch k {
	case wire.KindNull:
	case wire.KindInt64, wire.KindFloat64:
		buf = append(buf, fixed(8)...)
	case wire.KindTime:
		b := fixed(12)
		// Mostly valid offsets, so the conversions run rather than the check.
		if kind&0x80 == 0 {
			binary.LittleEndian.PutUint32(b[8:], uint32(int32(binary.LittleEndian.Uint32(b[8:]))%86400))
		}
		buf = append(buf, b...)
	default:
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
		buf = append(buf, payload...)
	}
	return buf
}

var (
	fuzzOnce    sync.Once
	fuzzCluster *pgtest.Cluster
	fuzzConn    *pgx.Conn
	fuzzErr     error
)

// fuzzServer is one cluster for the whole test process (the fuzzer calls
// its target from many tests, and runs several processes); TestMain stops it.
func fuzzServer(t *testing.T) (*pgtest.Cluster, *pgx.Conn) {
	lib := testext(t)
	fuzzOnce.Do(func() {
		if fuzzCluster, fuzzErr = pgtest.Launch(pgtest.Options{Preload: []string{lib.Loader}}); fuzzErr != nil {
			return
		}
		ctx := context.Background()
		if fuzzConn, fuzzErr = pgx.Connect(ctx, fuzzCluster.ConnString()); fuzzErr != nil {
			return
		}
		script, err := os.ReadFile(lib.SQLFile)
		if err == nil {
			_, err = fuzzConn.Exec(ctx, string(script))
		}
		fuzzErr = err
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzCluster, fuzzConn
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fuzzCluster != nil {
		fuzzCluster.Close()
	}
	os.Exit(code)
}

func checkParam(t *testing.T, c *pgtest.Cluster, conn *pgx.Conn, buf []byte, typ uint32) {
	t.Helper()
	var text *string
	err := conn.QueryRow(context.Background(), "SELECT testext_param_roundtrip($1, $2::oid)", buf, int64(typ)).Scan(&text)
	var pe *pgconn.PgError
	if err != nil && !errors.As(err, &pe) {
		t.Fatalf("param % x as type %d: %v (not an ERROR: the backend died?)\n%s", buf, typ, err, c.LogTail(20))
	}
}

// TestParamPathRandom sends 3000 random parameters through the loader.
func TestParamPathRandom(t *testing.T) {
	c, conn := startDynamic(t, nil)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		payload := make([]byte, r.IntN(24))
		for j := range payload {
			payload[j] = byte(r.UintN(256))
		}
		if r.IntN(4) == 0 && len(payload) >= 8 {
			// Interesting integers: extremes and PostgreSQL's limits.
			v := []int64{math.MinInt64, math.MaxInt64, -1, 0, 1 << 31, -211813488000000000, 9223371331200000000}[r.IntN(7)]
			binary.LittleEndian.PutUint64(payload, uint64(v))
		}
		checkParam(t, c, conn, paramBuffer(r.IntN(8) == 0, uint8(r.UintN(256)), fuzzTypes[r.IntN(len(fuzzTypes))]*uint32(r.IntN(2)), payload),
			fuzzTypes[r.IntN(len(fuzzTypes))])
	}
	c.AssertNoCrashRecovery(t)
}

func FuzzParamPath(f *testing.F) {
	f.Add(false, uint8(3), uint32(0), []byte("a\x00b"), uint8(7))
	f.Add(false, uint8(5), uint32(0), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, uint8(20))
	f.Add(false, uint8(2), uint32(700), []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x7f}, uint8(11))
	f.Add(true, uint8(0), uint32(0), []byte{3, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, uint8(7))
	f.Add(false, uint8(4), uint32(17), []byte{0, 1, 2}, uint8(1))
	f.Fuzz(func(t *testing.T, raw bool, kind uint8, declared uint32, payload []byte, typIdx uint8) {
		c, conn := fuzzServer(t)
		checkParam(t, c, conn, paramBuffer(raw, kind, declared, payload), fuzzTypes[int(typIdx)%len(fuzzTypes)])
	})
}

// Command background is a pg_background-class extension: run a query in a
// background worker and read its rows later, from the same session.
//
//	SELECT background_launch('SELECT g, md5(g::text) FROM generate_series(1, 100000) g');  -- the worker's pid
//	SELECT * FROM background_result(12345) AS (g int, m text);
//	SELECT background_detach(12345);  -- let it finish alone, results discarded
//
// The worker runs the query in the caller's database as the caller's role
// and streams the rows back over a message queue (package shmem); a
// failing query's SQLSTATE and message reach the caller of
// background_result.
//
// Install it as pg_background is installed, without preloading: `pggo
// install ./examples/background` (or `pggo build`, which writes
// background.control and background--VERSION.sql), then
// `CREATE EXTENSION background`. The functions are revoked from PUBLIC:
// GRANT EXECUTE to the roles that may use them.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
	"github.com/pggo/pggo/shmem"
	"github.com/pggo/pggo/spi"
)

func init() {
	bgworker.RegisterFunction("background_main", backgroundMain)
	fmgr.Register("background_launch", "(sql text, queue_size int4 DEFAULT 65536) RETURNS int4 STRICT", launch)
	fmgr.Register("background_result", "(pid int4) RETURNS SETOF record STRICT", result)
	fmgr.Register("background_detach", "(pid int4) RETURNS void STRICT", detach)
}

// Messages from the worker: a row, the end, or an error.
const (
	msgRow   = 'D'
	msgDone  = 'C'
	msgError = 'E'
	msgQuery = 'Q' // the query text, from the launcher (extra holds only ids)
	msgAck   = 'A' // the worker has the query (its queue may go); then its pid
)

// launched: this session's workers, by pid (Go globals are per process,
// which is what pg_background's per-session list is too).
var launched = map[int32]*job{}

type job struct {
	q *shmem.Queue // the rows: this end receives
	w *bgworker.DynamicWorker
}

func launch(args *fmgr.Args) (any, error) {
	var sql string
	var size int32
	if err := args.Scan(&sql, &size); err != nil {
		return nil, err
	}
	// One queue each way would be pg_background's layout; the query goes
	// first on a queue of its own so it can be of any length.
	rows, err := shmem.CreateQueue(int(size), shmem.Receiver)
	if err != nil {
		return nil, err
	}
	query, err := shmem.CreateQueue(max(len(sql)+64, 1024), shmem.Sender)
	if err != nil {
		rows.Close()
		return nil, err
	}
	w, err := bgworker.New("pggo background").SetType("pggo background").
		SetFunction("background_main").EnableSPIAccess().
		SetArgument(rows.Handle().Datum()).
		SetExtra(fmt.Sprintf("%d %d %d", query.Handle(), bgworker.DatabaseOID(), bgworker.UserOID())).
		SetNotifyPID(os.Getpid()).LoadDynamic()
	if err != nil {
		rows.Close()
		query.Close()
		return nil, err
	}
	for _, step := range []func() error{
		func() error { return rows.SetWorker(w) },
		func() error { return query.SetWorker(w) },
		func() error { return query.Send(append([]byte{msgQuery}, sql...)) },
	} {
		if err := step(); err != nil {
			rows.Close()
			query.Close()
			return nil, err
		}
	}
	// The worker's first message carries its pid: WaitForStartup would
	// fail for a quick query whose worker has already exited (Stopped).
	// A worker that never starts reads as detached (SetWorker).
	var pid int32
	ack, err := rows.Receive()
	if err == nil && (len(ack) != 5 || ack[0] != msgAck) {
		err = fmt.Errorf("background: unexpected first message %q", ack)
	}
	if err == nil {
		pid = int32(binary.LittleEndian.Uint32(ack[1:]))
	}
	// A segment both ends have left is gone: the query's queue was kept
	// until the worker had read from it.
	query.Close()
	if err != nil {
		rows.Close()
		return nil, err
	}
	launched[pid] = &job{q: rows, w: w}
	return pid, nil
}

func take(pid int32) (*job, error) {
	j := launched[pid]
	if j == nil {
		return nil, &pggo.Error{SQLState: "42704", Message: fmt.Sprintf("PID %d is not attached to this session", pid)}
	}
	delete(launched, pid)
	return j, nil
}

func result(args *fmgr.Args) (any, error) {
	var pid int32
	if err := args.Scan(&pid); err != nil {
		return nil, err
	}
	j, err := take(pid)
	if err != nil {
		return nil, err
	}
	defer j.q.Close()
	var out fmgr.Rows
	for {
		msg, err := j.q.Receive()
		if errors.Is(err, shmem.ErrDetached) {
			return nil, &pggo.Error{SQLState: "08006", Message: "the background worker exited without sending its results"}
		}
		if err != nil {
			return nil, err
		}
		switch msg[0] {
		case msgRow:
			row, err := decodeRow(msg[1:])
			if err != nil {
				return nil, err
			}
			out.Rows = append(out.Rows, row)
		case msgDone:
			return out, nil
		case msgError:
			state, text, _ := strings.Cut(string(msg[1:]), " ")
			return nil, &pggo.Error{SQLState: state, Message: text, Context: "background worker"}
		}
	}
}

func detach(args *fmgr.Args) (any, error) {
	var pid int32
	if err := args.Scan(&pid); err != nil {
		return nil, err
	}
	j, err := take(pid)
	if err != nil {
		return nil, err
	}
	return nil, j.q.Close()
}

// backgroundMain runs the query and streams its rows as text values: the
// caller's column definition list converts them (with the types' input
// functions) in background_result.
func backgroundMain(arg pggo.Datum) error {
	var qh uint32
	var db, user uint32
	fmt.Sscanf(bgworker.Extra(), "%d %d %d", &qh, &db, &user)
	out, err := shmem.AttachQueue(shmem.HandleFromDatum(arg), shmem.Sender)
	if err != nil {
		return err
	}
	defer out.Close()
	in, err := shmem.AttachQueue(shmem.QueueHandle(qh), shmem.Receiver)
	if err != nil {
		return err
	}
	msg, err := in.Receive()
	in.Close()
	if err != nil {
		return err
	}
	sql := string(msg[1:])
	if err := out.Send(binary.LittleEndian.AppendUint32([]byte{msgAck}, uint32(os.Getpid()))); err != nil {
		return err
	}
	if err := bgworker.ConnectWorkerToSPIByOID(pggo.Oid(db), pggo.Oid(user)); err != nil {
		return err
	}
	bgworker.ReportActivity(sql)
	detached := false
	send := func(m []byte) error {
		if detached {
			return nil // background_detach: finish alone
		}
		err := out.Send(m)
		if errors.Is(err, shmem.ErrDetached) {
			detached = true
			return nil
		}
		return err
	}
	err = bgworker.Transaction(func() error {
		rows, err := spi.Query(sql)
		if err != nil {
			return err
		}
		defer rows.Close()
		buf := []byte{}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return err
			}
			buf = encodeRow(append(buf[:0], msgRow), vals)
			if err := send(buf); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		var pe *pggo.Error
		state := "XX000"
		if errors.As(err, &pe) {
			state = pe.SQLState
		}
		if serr := send([]byte(fmt.Sprintf("%c%s %s", msgError, state, messageOf(err)))); serr != nil {
			return serr
		}
		return nil
	}
	return send([]byte{msgDone})
}

func messageOf(err error) string {
	var pe *pggo.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

// A row: u32 count, then per value i32 length (-1: NULL) and its text.
func encodeRow(buf []byte, vals []any) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(vals)))
	for _, v := range vals {
		if v == nil {
			buf = binary.LittleEndian.AppendUint32(buf, ^uint32(0))
			continue
		}
		s := textOf(v)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	return buf
}

// textOf is PostgreSQL's text form of a value spi returned.
func textOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return `\x` + fmt.Sprintf("%x", x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.Format("2006-01-02 15:04:05.999999Z07:00")
	}
	return fmt.Sprint(v)
}

func decodeRow(b []byte) ([]any, error) {
	if len(b) < 4 {
		return nil, errors.New("background: malformed row")
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	row := make([]any, 0, n)
	for i := uint32(0); i < n; i++ {
		if len(b) < 4 {
			return nil, errors.New("background: malformed row")
		}
		l := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if l == ^uint32(0) {
			row = append(row, nil)
			continue
		}
		if uint32(len(b)) < l {
			return nil, errors.New("background: malformed row")
		}
		row = append(row, string(b[:l]))
		b = b[l:]
	}
	return row, nil
}

func main() {}

package bgworker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pggo/pggo/internal/pg"
)

// logQueueMax bounds the records goroutines may queue for the worker's
// thread. Beyond it a goroutine waits up to logWaitMax for the worker to
// drain the queue; after that (a worker that does not wait) a record is written straight to the server's stderr, which is the server log
// unless logging_collector is on: never dropped.
const logQueueMax = 4096

// logWaitMax is how long a goroutine waits for room in a full queue.
const logWaitMax = time.Second

type logRecord struct {
	level int
	text  string
}

var (
	logMu    sync.Mutex
	logQueue []logRecord
	// logDrained is closed (and replaced) each time the worker drains the
	// queue: goroutines waiting for room wake up.
	logDrained = make(chan struct{})
	// minLogLevel is the lowest slog level log_min_messages lets through,
	// refreshed by the worker's thread at each wait (the configuration is
	// reloaded there).
	minLogLevel atomic.Int64
)

// NewLogHandler returns a log/slog handler writing to the server log
// through PostgreSQL's ereport, safe from any goroutine: records made on
// the worker's goroutine are written at once, others are queued and written
// by the worker's thread, in order, when it next waits ([WaitLatch], [Do],
// [Serve]) or logs. Levels: Debug → DEBUG1, Info → LOG, Warn → WARNING,
// Error → LOG with the text "ERROR: " in front (an ereport(ERROR) would end
// the worker). log_min_messages is respected as if Info were INFO and
// Error were ERROR (log_min_messages = warning hides Info); opts.Level, if
// set, is a further minimum. Attributes follow the message as key=value
// (groups as group.key). A record the worker cannot take (more than 4096
// queued and no room for a second) is written straight to the server's
// stderr instead of dropped.
//
//	logger := slog.New(bgworker.NewLogHandler(nil))
//	logger.Info("batch done", "rows", n)
func NewLogHandler(opts *slog.HandlerOptions) slog.Handler {
	h := &logHandler{}
	if opts != nil {
		h.opts = *opts
	}
	if pg.OnWorkerThread() {
		refreshLogLevel()
	}
	return h
}

type logHandler struct {
	opts   slog.HandlerOptions
	prefix string // group names, "a.b."
	attrs  string // preformatted " k=v" of WithAttrs
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool {
	if h.opts.Level != nil && l < h.opts.Level.Level() {
		return false
	}
	return int64(l) >= minLogLevel.Load()
}

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if r.Level >= slog.LevelError {
		b.WriteString("ERROR: ")
	}
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.prefix, h.opts.ReplaceAttr, nil, a)
		return true
	})
	rec := logRecord{level: pgLevel(r.Level), text: b.String()}
	if pg.OnWorkerThread() {
		flushLogs() // the queued ones first, to keep the order
		return pg.Log(rec.level, rec.text)
	}
	// A full queue holds the goroutine back until the worker drains it, a
	// second at most; then the record goes straight to stderr.
	deadline := time.Now().Add(logWaitMax)
	for {
		logMu.Lock()
		if len(logQueue) < logQueueMax {
			logQueue = append(logQueue, rec)
			logMu.Unlock()
			pg.NotifyWork()
			return nil
		}
		drained := logDrained
		logMu.Unlock()
		pg.NotifyWork()
		left := time.Until(deadline)
		if left <= 0 {
			fmt.Fprintf(os.Stderr, "%s pggo slog [%d] (queue full): %s\n", time.Now().Format("2006-01-02 15:04:05.000 MST"), os.Getpid(), rec.text)
			return nil
		}
		select {
		case <-drained:
		case <-time.After(left):
		}
	}
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		appendAttr(&b, h.prefix, h.opts.ReplaceAttr, nil, a)
	}
	h2 := *h
	h2.attrs = b.String()
	return &h2
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

func appendAttr(b *strings.Builder, prefix string, replace func([]string, slog.Attr) slog.Attr, groups []string, a slog.Attr) {
	if replace != nil && a.Value.Kind() != slog.KindGroup {
		a = replace(groups, a)
	}
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
			groups = append(groups, a.Key)
		}
		for _, g := range a.Value.Group() {
			appendAttr(b, p, replace, groups, g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(prefix)
	b.WriteString(a.Key)
	b.WriteByte('=')
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		v = strconv.Quote(v)
	}
	b.WriteString(v)
}

func pgLevel(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return pg.LogDebug
	case l < slog.LevelWarn:
		return pg.LogLog
	case l < slog.LevelError:
		return pg.LogWarning
	}
	return pg.LogLog
}

// flushLogs writes the queued records; on the worker's thread.
func flushLogs() {
	logMu.Lock()
	q := logQueue
	logQueue = nil
	if len(q) > 0 {
		close(logDrained)
		logDrained = make(chan struct{})
	}
	logMu.Unlock()
	for _, r := range q {
		if pg.Log(r.level, r.text) != nil {
			fmt.Fprintf(os.Stderr, "pggo slog [%d]: %s\n", os.Getpid(), r.text)
		}
	}
}

// refreshLogLevel maps log_min_messages to the lowest slog level it lets
// through; on the worker's thread.
func refreshLogLevel() {
	v, ok, err := pg.Setting("log_min_messages")
	if err != nil || !ok {
		return
	}
	level := slog.LevelDebug
	switch strings.ToLower(v) {
	case "debug5", "debug4", "debug3", "debug2", "debug1":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "notice", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default: // log, fatal, panic
		level = slog.LevelError + 1
	}
	minLogLevel.Store(int64(level))
}

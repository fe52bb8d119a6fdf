package fault

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pggo/pggo/pgtest"
)

// TestPgbench fills every max_worker_processes slot with SPI workers and
// runs pgbench against the same cluster, first with the workers paused, then
// with them running: both throughputs are reported, and neither pgbench nor
// the workers may see an error.
func TestPgbench(t *testing.T) {
	tb := track(t, "max_worker_processes SPI workers alongside pgbench")
	tb.about("All 8 `max_worker_processes` slots hold SPI workers (nested savepoints, a query and an update " +
		"per transaction). pgbench (TPC-B like, 4 clients, 2 threads) runs first with the workers paused " +
		"(`faultext.pause`), then with them running. pgbench must report no failed transaction and exit 0, " +
		"the workers no error; both throughputs are reported.")
	const slots = 8
	c := start(tb, map[string]string{
		"max_worker_processes":            strconv.Itoa(slots),
		"max_logical_replication_workers": "0", // its launcher would take a slot
		"faultext.pause":                  "on",
	}, fmt.Sprintf("PGGO_FAULT_WORKERS=spi:%d", slots), "PGGO_FAULT_NAPTIME=1000")
	conn := c.Connect(tb)
	ctx := context.Background()
	names := busyNames(map[string]int{"spi": slots})
	pgtest.Eventually(tb, 30*time.Second, "every SPI worker registered in fault_progress", func() (bool, error) {
		p, err := readProgress(conn)
		return until(err == nil && len(p) == slots, "%d of %d workers (%v)", len(p), slots, err)
	})

	scale := pick(1, 10)
	secs := pick(3, 30)
	// The assembled PostgreSQL 17/18 servers ship no pgbench; Debian's
	// client speaks to them as well.
	pgbench := filepath.Join(c.BinDir(), "pgbench")
	if _, err := os.Stat(pgbench); err != nil {
		pgbench = "/usr/lib/postgresql/15/bin/pgbench"
	}
	if _, err := os.Stat(pgbench); err != nil {
		t.Skipf("no pgbench next to %s or in Debian's PostgreSQL 15", c.BinDir())
	}
	conninfo := []string{"-h", c.SocketDir(), "-p", strconv.Itoa(c.Port()), "-U", "postgres"}
	if out, err := exec.Command(pgbench, append(append([]string{"-i", "-q", "-s", strconv.Itoa(scale)}, conninfo...), "postgres")...).CombinedOutput(); err != nil {
		tb.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	run := func(label string) float64 {
		args := append([]string{"-c", "4", "-j", "2", "-T", strconv.Itoa(secs), "-n"}, conninfo...)
		out, err := exec.Command(pgbench, append(args, "postgres")...).CombinedOutput()
		if err != nil {
			tb.Fatalf("pgbench %s: %v\n%s", label, err, out)
		}
		tps := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindSubmatch(out)
		if tps == nil {
			tb.Fatalf("pgbench %s: no tps in its output:\n%s", label, out)
		}
		if m := regexp.MustCompile(`number of failed transactions: (\d+)`).FindSubmatch(out); m != nil && string(m[1]) != "0" {
			tb.Errorf("pgbench %s: %s failed transactions\n%s", label, m[1], out)
		}
		v, _ := strconv.ParseFloat(string(tps[1]), 64)
		return v
	}

	alone := run("alone")
	paused := progressOf(tb, conn)
	mustExec(tb, conn, "ALTER SYSTEM SET faultext.pause = off")
	mustExec(tb, conn, "SELECT pg_reload_conf()")
	base := waitProgress(tb, conn, names, paused, 10, 30*time.Second, "the SPI workers running after the pause ends")
	t0 := time.Now()
	with := run(fmt.Sprintf("with %d workers", slots))
	after := progressOf(tb, conn)
	dt := time.Since(t0).Seconds()
	var units, bad int64
	for _, k := range names {
		units += after[k].N - base[k].N
		bad += after[k].Bad
		if after[k].Bad > 0 {
			tb.Errorf("%s saw %d errors, the last: %s", k, after[k].Bad, after[k].LastError)
		}
	}
	var running int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'faultext_spi'").Scan(&running); err != nil {
		tb.Fatal(err)
	}
	tb.key("pgbench tps alone (workers paused)", "%.0f (scale %d, 4 clients, %d s)", alone, scale, secs)
	tb.key(fmt.Sprintf("pgbench tps with %d SPI workers", slots), "%.0f", with)
	tb.key("worker transactions/s during the second run", "%.0f in total, %.0f per worker", float64(units)/dt, float64(units)/dt/slots)
	tb.fig("worker errors", "%d", bad)
	if running != slots {
		tb.Errorf("%d of %d SPI workers still running after pgbench", running, slots)
	}
	if units == 0 {
		tb.Errorf("the workers did no work while pgbench ran")
	}
	tb.noCrash(c)
}

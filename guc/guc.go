// Package guc reads PostgreSQL configuration settings (GUCs) from Go: the
// built-in ones and custom "prefix.name" settings an extension's users put in
// postgresql.conf, such as "worker_spi.naptime"; and declares an
// extension's own settings (DefineInt, DefineFloat, DefineDuration,
// DefineBool, DefineString, DefineEnum), which PostgreSQL then knows in
// every process: SHOW, ALTER SYSTEM with their bounds, pg_settings, a
// reserved prefix; with Options for a Unit ('64MB', '5min'), the flags
// NoShowAll, SuperuserOnly and NotInSample, and a Check hook in Go (see
// Check for where it runs).
//
// Get works in pggo.OnInit (to decide how many workers to register) and in a
// running worker, on its own goroutine. A worker sees a changed
// postgresql.conf after SIGHUP, once bgworker.WaitLatch has reloaded it.
package guc

import (
	"fmt"
	"strconv"
	"time"

	"github.com/pggo/pggo/internal/pg"
)

// Get returns the current value of the setting name as PostgreSQL shows it
// (SHOW), and whether the setting exists.
func Get(name string) (string, bool, error) {
	return pg.Setting(name)
}

// Int returns the setting as an integer, or def if it is not set.
func Int(name string, def int) (int, error) {
	v, ok, err := Get(name)
	if err != nil || !ok || v == "" {
		return def, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, fmt.Errorf("guc: %s = %q is not an integer", name, v)
	}
	return n, nil
}

// Duration returns the setting as a duration, or def if it is not set. A
// plain number is taken in unit (PostgreSQL's convention for time settings);
// "10s", "500ms", "2min" and "1h" are understood too.
func Duration(name string, unit, def time.Duration) (time.Duration, error) {
	v, ok, err := Get(name)
	if err != nil || !ok || v == "" {
		return def, err
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(n) * unit, nil
	}
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"min", time.Minute}, {"s", time.Second}, {"h", time.Hour}, {"d", 24 * time.Hour}} {
		if len(v) > len(u.suffix) && v[len(v)-len(u.suffix):] == u.suffix {
			if n, err := strconv.ParseInt(v[:len(v)-len(u.suffix)], 10, 64); err == nil {
				return time.Duration(n) * u.d, nil
			}
		}
	}
	return def, fmt.Errorf("guc: %s = %q is not a duration (e.g. 10, 10s, 500ms, 2min)", name, v)
}

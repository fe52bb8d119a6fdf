package guc

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pggo/pggo/internal/pg"
)

// Context says who may change a declared setting, and when it takes effect.
type Context uint8

// The contexts of PostgreSQL's custom settings.
const (
	// Postmaster: postgresql.conf or the command line, read at server start.
	Postmaster = Context(pg.ContextPostmaster)
	// Sighup: postgresql.conf (or ALTER SYSTEM), read again on reload.
	Sighup = Context(pg.ContextSighup)
	// Superuser: also SET by superusers (and roles granted SET on it).
	Superuser = Context(pg.ContextSuperuser)
	// User: SET by anyone.
	User = Context(pg.ContextUser)
)

// The Define functions declare a setting that PostgreSQL itself knows: the
// postmaster defines it at start (the init helper carries the declaration
// there, so no Go runs in it), so SHOW, SET, ALTER SYSTEM (with the bounds
// checked), pg_settings and postgresql.conf work in every process, and the
// name's prefix (before the first '.') is reserved: an unknown
// "prefix.name" in postgresql.conf is reported at start. Call them in a
// package-level variable of the extension, so that every process has the
// handle; a bad declaration (name, bounds, options) makes the server
// refuse to start, naming the setting.
//
// A library that is not preloaded defines its settings in each process
// that loads it (LOAD, a call of one of its SQL functions, CREATE
// EXTENSION, a dynamic worker of it): Go is loaded there and the package's
// declarations are defined as in the postmaster, the prefix reserved.
// PostgreSQL refuses to define a Postmaster setting after start, so such a
// setting stays a plain placeholder in that case (Get reads its text from
// postgresql.conf, or the default) and its prefix is not reserved there.
//
// The value is PostgreSQL's: read it with the handle's Get in a worker
// (after SIGHUP, once bgworker.WaitLatch has reloaded the configuration) or
// a SQL function. In pggo.OnInit, which runs before the postmaster has
// defined the setting, Get returns postgresql.conf's value, or the default.
//
// Each Define function takes Options after its context: a Unit (integer
// and real settings), the flags NoShowAll, SuperuserOnly and NotInSample,
// and a Check hook. Declarations without options keep their meaning.

// Option refines a declaration: a Unit, a Flag or a Check hook.
type Option interface {
	apply(*declOptions)
}

type declOptions struct {
	unit     Unit
	unitSet  bool
	flags    uint32
	check    any // func(T) error
	checkErr error
}

// Unit is the unit of an integer or real setting's value: PostgreSQL then
// accepts values with a unit ('64MB', '5min'), converts them to this unit,
// shows the value with one in SHOW and lists it in pg_settings.unit. Get
// returns the number in this unit (DurationSetting's Get a time.Duration).
type Unit uint8

// The units PostgreSQL knows for settings.
const (
	Bytes        = Unit(pg.UnitBytes)
	Kilobytes    = Unit(pg.UnitKB)
	Megabytes    = Unit(pg.UnitMB)
	Blocks       = Unit(pg.UnitBlocks) // the server's block size, 8 kB by default
	Milliseconds = Unit(pg.UnitMS)
	Seconds      = Unit(pg.UnitS)
	Minutes      = Unit(pg.UnitMin)
)

func (u Unit) apply(o *declOptions) {
	if o.unitSet && o.unit != u && o.checkErr == nil {
		o.checkErr = fmt.Errorf("two units given (%v and %v)", o.unit, u)
	}
	o.unit, o.unitSet = u, true
}

// String is the unit as PostgreSQL writes it ("B", "kB", "MB", "8kB"
// blocks, "ms", "s", "min").
func (u Unit) String() string {
	switch u {
	case Bytes:
		return "B"
	case Kilobytes:
		return "kB"
	case Megabytes:
		return "MB"
	case Blocks:
		return "blocks"
	case Milliseconds:
		return "ms"
	case Seconds:
		return "s"
	case Minutes:
		return "min"
	}
	return fmt.Sprintf("Unit(%d)", uint8(u))
}

// duration is the length of one u, for the time units.
func (u Unit) duration() time.Duration {
	switch u {
	case Milliseconds:
		return time.Millisecond
	case Seconds:
		return time.Second
	case Minutes:
		return time.Minute
	}
	return 0
}

// Flag is one of PostgreSQL's setting flags.
type Flag uint32

const (
	// NoShowAll leaves the setting out of SHOW ALL (pg_settings and SHOW
	// name still show it): GUC_NO_SHOW_ALL.
	NoShowAll = Flag(pg.FlagNoShowAll)
	// SuperuserOnly shows the value only to superusers and roles with
	// pg_read_all_settings (SHOW by others is refused): GUC_SUPERUSER_ONLY.
	// Who may change it is still the Context's business.
	SuperuserOnly = Flag(pg.FlagSuperuserOnly)
	// NotInSample marks it as not for postgresql.conf.sample:
	// GUC_NOT_IN_SAMPLE.
	NotInSample = Flag(pg.FlagNotInSample)
)

func (f Flag) apply(o *declOptions) { o.flags |= uint32(f) }

// CheckValue is what a check hook may take: the Go type of the setting's
// values.
type CheckValue interface {
	int | float64 | bool | string | time.Duration
}

type checkOption[T CheckValue] func(T) error

func (c checkOption[T]) apply(o *declOptions) {
	if o.check != nil && o.checkErr == nil {
		o.checkErr = fmt.Errorf("two check hooks given")
	}
	o.check = (func(T) error)(c)
}

// Check is a hook that validates each new value of the setting beyond its
// bounds: it returns nil to accept the value, or an error whose message
// PostgreSQL shows as the DETAIL of its "invalid value for parameter"
// error. Its argument type must be the setting's value type: int for
// DefineInt, float64 for DefineFloat, time.Duration for DefineDuration,
// bool for DefineBool, string for DefineString and DefineEnum.
//
// The postmaster never runs Go, so where the hook runs is precise:
//
//   - At server start, in the init helper (a fork of the postmaster, after
//     postgresql.conf, postgresql.auto.conf and the command line were
//     read): the start value of each setting with a hook, as PostgreSQL
//     parsed it, is passed to the hook; a rejection makes the server
//     refuse to start, with FATAL naming the setting, the value and the
//     hook's message.
//   - In a process where the extension's Go library is loaded (its
//     workers; a backend that called one of its SQL functions or loaded a
//     library that is not preloaded): every SET, ALTER SYSTEM, reload of
//     postgresql.conf and function SET clause there.
//   - In a regular backend where Go is not loaded yet, for a change made
//     inside a transaction (SET, ALTER SYSTEM, SET clauses; at connection
//     start the startup options and ALTER ROLE ... SET values, applied in
//     the startup transaction): the backend loads the Go library then
//     (once; about as long as a first SQL function call) and runs the hook.
//   - Nowhere else: the postmaster's reload and processes without Go
//     (a backend's reload, outside a transaction; autovacuum; other
//     extensions' workers) apply only the declared bounds, so a value
//     written to postgresql.conf by hand and reloaded can be in force
//     there although the hook would reject it; workers and backends with
//     Go reject it at the reload (logged by PostgreSQL, at DEBUG2 in a
//     backend) and keep their previous value.
//
// The hook must only look at the value: it runs inside PostgreSQL's
// setting machinery, where SPI and other pggo calls are not allowed. A
// panic in it is a rejection (its value the message), never a crash. Only
// declarations in package-level variables have their hook in every
// process: one declared in pggo.OnInit is checked at start only.
func Check[T CheckValue](hook func(v T) error) Option { return checkOption[T](hook) }

// setting is what every declared setting's handle holds.
type setting struct {
	name string
	unit Unit
	err  error
}

// Name is the setting's name.
func (s *setting) Name() string { return s.name }

// options applies opts for a setting whose hooks take T, filling spec.
func options[T CheckValue](spec *pg.SettingSpec, opts []Option, conv func(i int64, f float64, s string) T) (Unit, error) {
	var o declOptions
	for _, opt := range opts {
		if opt == nil {
			return 0, fmt.Errorf("a nil option")
		}
		opt.apply(&o)
	}
	if o.checkErr != nil {
		return 0, o.checkErr
	}
	spec.Flags = o.flags
	spec.Unit = uint8(o.unit)
	if o.check != nil {
		hook, ok := o.check.(func(T) error)
		if !ok {
			var zero T
			return 0, fmt.Errorf("the check hook takes %T; this setting's values are %T", o.check, zero)
		}
		spec.Check = func(i int64, f float64, s string) error { return hook(conv(i, f, s)) }
	}
	spec.Show = func(i int64, f float64, s string) string {
		u := Unit(spec.Unit) // final: DefineDuration sets it after the options
		switch spec.Kind {
		case pg.SettingInt:
			if u != 0 {
				return fmt.Sprintf("%d%s", i, u)
			}
			return strconv.FormatInt(i, 10)
		case pg.SettingReal:
			if u != 0 {
				return fmt.Sprintf("%g%s", f, u)
			}
			return strconv.FormatFloat(f, 'g', -1, 64)
		case pg.SettingBool:
			return strconv.FormatBool(i != 0)
		}
		return strconv.Quote(s)
	}
	return o.unit, nil
}

// declare records spec (or the error found before) and makes a bad
// declaration fail the server's start.
func declare(name string, err error, spec pg.SettingSpec) error {
	if err == nil {
		err = pg.DeclareSetting(spec)
	}
	if err != nil {
		err = fmt.Errorf("guc: setting %q: %w", name, err)
		pg.FailStatic(err)
	}
	return err
}

// IntSetting is a declared integer setting.
type IntSetting struct {
	setting
	def int
}

// DefineInt declares the integer setting name with values in [min, max],
// in unit if a Unit option is given (Get then returns the number of
// units: a Megabytes setting SET to '1GB' gives 1024).
func DefineInt(name, description string, def, min, max int, ctx Context, opts ...Option) *IntSetting {
	s := &IntSetting{setting: setting{name: name}, def: def}
	spec := pg.SettingSpec{Name: name, Description: description, Kind: pg.SettingInt, Context: uint8(ctx),
		Int: int32(def), Min: int32(min), Max: int32(max)}
	u, err := options(&spec, opts, func(i int64, _ float64, _ string) int { return int(i) })
	s.unit = u
	if err == nil && (int(spec.Int) != def || int(spec.Min) != min || int(spec.Max) != max) {
		err = fmt.Errorf("PostgreSQL's integer settings are 32-bit")
	}
	s.err = declare(name, err, spec)
	return s
}

// Get returns the setting's current value (in its unit, if it has one).
func (s *IntSetting) Get() (int, error) {
	if s.err != nil {
		return s.def, s.err
	}
	n, ok, err := intValue(s.name, s.unit)
	if err != nil || !ok {
		return s.def, err
	}
	return int(n), nil
}

// intValue reads an integer setting: a defined one shows a plain number
// in its unit; a placeholder (in OnInit) holds the text as written, which
// may have a unit of its own ("5min").
func intValue(name string, unit Unit) (int64, bool, error) {
	v, ok, err := Get(name)
	if err != nil || !ok {
		return 0, false, err
	}
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		return n, true, nil
	}
	f, err := parseUnits(v, unit)
	// PostgreSQL rounds a value with a unit to the nearest whole one (rint).
	if f = math.RoundToEven(f); err == nil && (f < math.MinInt32 || f > math.MaxInt32) {
		err = fmt.Errorf("out of range")
	}
	if err != nil {
		return 0, false, fmt.Errorf("guc: %s = %q is not an integer%s: %v", name, v, unitHint(unit), err)
	}
	return int64(f), true, nil
}

func unitHint(u Unit) string {
	if u == 0 {
		return ""
	}
	return " in " + u.String()
}

// FloatSetting is a declared real (float8) setting.
type FloatSetting struct {
	setting
	def float64
}

// DefineFloat declares the real (double precision) setting name with
// values in [min, max], in unit if a Unit option is given.
func DefineFloat(name, description string, def, min, max float64, ctx Context, opts ...Option) *FloatSetting {
	s := &FloatSetting{setting: setting{name: name}, def: def}
	spec := pg.SettingSpec{Name: name, Description: description, Kind: pg.SettingReal, Context: uint8(ctx),
		Real: def, RealMin: min, RealMax: max}
	u, err := options(&spec, opts, func(_ int64, f float64, _ string) float64 { return f })
	s.unit = u
	s.err = declare(name, err, spec)
	return s
}

// Get returns the setting's current value (in its unit, if it has one),
// exactly: not the 6 digits SHOW prints.
func (s *FloatSetting) Get() (float64, error) {
	if s.err != nil {
		return s.def, s.err
	}
	if v, ok, err := pg.RealSetting(s.name); ok || err != nil {
		if err != nil {
			return s.def, err
		}
		return v, nil
	}
	v, ok, err := Get(s.name)
	if err != nil || !ok {
		return s.def, err
	}
	f, err := parseUnits(v, s.unit)
	if err != nil {
		return s.def, fmt.Errorf("guc: %s = %q is not a number%s: %v", s.name, v, unitHint(s.unit), err)
	}
	return f, nil
}

// DurationSetting is a declared time setting, an integer number of
// milliseconds, seconds or minutes for PostgreSQL.
type DurationSetting struct {
	setting
	def time.Duration
}

// DefineDuration declares a time setting stored by PostgreSQL as an
// integer in unit (Milliseconds, Seconds or Minutes), so that SET name =
// '2min' works and pg_settings.unit shows unit. def, min and max must be
// whole multiples of unit that fit 32 bits once divided by it; anything
// else is a bad declaration (the server refuses to start, naming it).
func DefineDuration(name, description string, def, min, max time.Duration, unit Unit, ctx Context, opts ...Option) *DurationSetting {
	s := &DurationSetting{setting: setting{name: name, unit: unit}, def: def}
	spec := pg.SettingSpec{Name: name, Description: description, Kind: pg.SettingInt, Context: uint8(ctx)}
	d := unit.duration()
	u, err := options(&spec, opts, func(i int64, _ float64, _ string) time.Duration { return time.Duration(i) * d })
	if err == nil && u != 0 {
		err = fmt.Errorf("the unit is DefineDuration's argument (%v), not an option (%v)", unit, u)
	}
	if err == nil && d == 0 {
		err = fmt.Errorf("a duration's unit must be Milliseconds, Seconds or Minutes, not %v", unit)
	}
	spec.Unit = uint8(unit)
	for _, v := range []struct {
		what string
		d    time.Duration
		to   *int32
	}{{"default", def, &spec.Int}, {"minimum", min, &spec.Min}, {"maximum", max, &spec.Max}} {
		if err != nil {
			break
		}
		if v.d%d != 0 {
			err = fmt.Errorf("the %s %v is not a whole number of %s", v.what, v.d, unitName(unit))
		} else if n := v.d / d; n < math.MinInt32 || n > math.MaxInt32 {
			err = fmt.Errorf("the %s %v is %d %s, more than PostgreSQL's 32-bit integer settings hold", v.what, v.d, n, unitName(unit))
		} else {
			*v.to = int32(n)
		}
	}
	if err == nil && (spec.Min > spec.Max || spec.Int < spec.Min || spec.Int > spec.Max) {
		err = fmt.Errorf("the default %v is not within [%v, %v]", def, min, max)
	}
	s.err = declare(name, err, spec)
	return s
}

func unitName(u Unit) string {
	switch u {
	case Milliseconds:
		return "milliseconds"
	case Seconds:
		return "seconds"
	case Minutes:
		return "minutes"
	}
	return u.String()
}

// Get returns the setting's current value.
func (s *DurationSetting) Get() (time.Duration, error) {
	if s.err != nil {
		return s.def, s.err
	}
	n, ok, err := intValue(s.name, s.unit)
	if err != nil || !ok {
		return s.def, err
	}
	return time.Duration(n) * s.unit.duration(), nil
}

// BoolSetting is a declared boolean setting.
type BoolSetting struct {
	setting
	def bool
}

// DefineBool declares the boolean setting name.
func DefineBool(name, description string, def bool, ctx Context, opts ...Option) *BoolSetting {
	spec := pg.SettingSpec{Name: name, Description: description, Kind: pg.SettingBool, Context: uint8(ctx), Bool: def}
	_, err := options(&spec, opts, func(i int64, _ float64, _ string) bool { return i != 0 })
	return &BoolSetting{setting: setting{name: name, err: declare(name, err, spec)}, def: def}
}

// Get returns the setting's current value.
func (s *BoolSetting) Get() (bool, error) {
	if s.err != nil {
		return s.def, s.err
	}
	v, ok, err := Get(s.name)
	if err != nil || !ok {
		return s.def, err
	}
	// SHOW prints on/off; a placeholder (in OnInit) holds what was written.
	switch v {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return s.def, fmt.Errorf("guc: %s = %q is not a boolean", s.name, v)
}

// StringSetting is a declared text setting.
type StringSetting struct {
	setting
	def string
}

// DefineString declares the text setting name.
func DefineString(name, description, def string, ctx Context, opts ...Option) *StringSetting {
	spec := pg.SettingSpec{Name: name, Description: description, Kind: pg.SettingString, Context: uint8(ctx), String: def}
	_, err := options(&spec, opts, func(_ int64, _ float64, s string) string { return s })
	return &StringSetting{setting: setting{name: name, err: declare(name, err, spec)}, def: def}
}

// Get returns the setting's current value.
func (s *StringSetting) Get() (string, error) {
	if s.err != nil {
		return s.def, s.err
	}
	v, ok, err := Get(s.name)
	if err != nil || !ok {
		return s.def, err
	}
	return v, nil
}

// EnumSetting is a declared setting with one of a list of values.
type EnumSetting struct {
	setting
	def string
}

// DefineEnum declares the setting name whose value is one of options
// (compared case-insensitively by PostgreSQL); def must be one of them. A
// Check hook gets the option as declared.
func DefineEnum(name, description, def string, options_ []string, ctx Context, opts ...Option) *EnumSetting {
	spec := pg.SettingSpec{Name: name, Description: description, Kind: pg.SettingEnum, Context: uint8(ctx),
		Options: append([]string(nil), options_...), Int: -1}
	for i, o := range options_ {
		if o == def {
			spec.Int = int32(i)
		}
	}
	_, err := options(&spec, opts, func(_ int64, _ float64, s string) string { return s })
	return &EnumSetting{setting: setting{name: name, err: declare(name, err, spec)}, def: def}
}

// Get returns the setting's current value, one of the options.
func (s *EnumSetting) Get() (string, error) {
	if s.err != nil {
		return s.def, s.err
	}
	v, ok, err := Get(s.name)
	if err != nil || !ok {
		return s.def, err
	}
	return v, nil
}

// parseUnits reads a value as PostgreSQL does (parse_int, parse_real): a
// number, then optionally a unit of the setting's kind, converted to
// unit; a number alone is in unit already.
func parseUnits(v string, unit Unit) (float64, error) {
	v = strings.TrimLeft(v, " \t")
	num := numberPrefix.FindString(v)
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		n, ierr := strconv.ParseInt(num, 0, 64) // 0x1F, as strtol reads it
		if ierr != nil {
			return 0, fmt.Errorf("%q does not start with a number", v)
		}
		f = float64(n)
	}
	rest := strings.Trim(v[len(num):], " \t")
	if rest == "" {
		return f, nil
	}
	if unit == 0 {
		return 0, fmt.Errorf("this setting has no unit")
	}
	memory := map[string]float64{"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	times := map[string]float64{"us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
	var from, base float64
	if d := unit.duration(); d != 0 {
		from, base = times[rest], float64(d/time.Millisecond)
	} else {
		from = memory[rest]
		switch unit {
		case Bytes:
			base = 1
		case Kilobytes:
			base = 1 << 10
		case Megabytes:
			base = 1 << 20
		case Blocks:
			base = 8192
			if n, err := Int("block_size", 8192); err == nil {
				base = float64(n)
			}
		}
	}
	if from == 0 || base == 0 {
		return 0, fmt.Errorf("%q is not a unit of this setting", rest)
	}
	return f * from / base, nil
}

// numberPrefix is what strtol or strtod read at the start of a value.
var numberPrefix = regexp.MustCompile(`^[+-]?(0[xX][0-9a-fA-F]+|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)`)

package guc

import (
	"fmt"
	"strconv"

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
// The value is PostgreSQL's: read it with the handle's Get in a worker
// (after SIGHUP, once bgworker.WaitLatch has reloaded the configuration) or
// a SQL function. In pggo.OnInit, which runs before the postmaster has
// defined the setting, Get returns postgresql.conf's value, or the default.

// IntSetting is a declared integer setting.
type IntSetting struct {
	name string
	def  int
	err  error
}

// DefineInt declares the integer setting name with values in [min, max].
func DefineInt(name, description string, def, min, max int, ctx Context) *IntSetting {
	s := &IntSetting{name: name, def: def}
	spec := pg.SettingSpec{Name: name, Description: description, Kind: pg.SettingInt, Context: uint8(ctx),
		Int: int32(def), Min: int32(min), Max: int32(max)}
	if int(spec.Int) != def || int(spec.Min) != min || int(spec.Max) != max {
		s.err = declare(name, fmt.Errorf("PostgreSQL's integer settings are 32-bit"), spec)
	} else {
		s.err = declare(name, nil, spec)
	}
	return s
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

// Name is the setting's name.
func (s *IntSetting) Name() string { return s.name }

// Get returns the setting's current value.
func (s *IntSetting) Get() (int, error) {
	if s.err != nil {
		return s.def, s.err
	}
	v, ok, err := Get(s.name)
	if err != nil || !ok {
		return s.def, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return s.def, fmt.Errorf("guc: %s = %q is not an integer", s.name, v)
	}
	return n, nil
}

// BoolSetting is a declared boolean setting.
type BoolSetting struct {
	name string
	def  bool
	err  error
}

// DefineBool declares the boolean setting name.
func DefineBool(name, description string, def bool, ctx Context) *BoolSetting {
	return &BoolSetting{name: name, def: def, err: declare(name, nil, pg.SettingSpec{
		Name: name, Description: description, Kind: pg.SettingBool, Context: uint8(ctx), Bool: def})}
}

// Name is the setting's name.
func (s *BoolSetting) Name() string { return s.name }

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
	name, def string
	err       error
}

// DefineString declares the text setting name.
func DefineString(name, description, def string, ctx Context) *StringSetting {
	return &StringSetting{name: name, def: def, err: declare(name, nil, pg.SettingSpec{
		Name: name, Description: description, Kind: pg.SettingString, Context: uint8(ctx), String: def})}
}

// Name is the setting's name.
func (s *StringSetting) Name() string { return s.name }

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
	name, def string
	err       error
}

// DefineEnum declares the setting name whose value is one of options
// (compared case-insensitively by PostgreSQL); def must be one of them.
func DefineEnum(name, description, def string, options []string, ctx Context) *EnumSetting {
	spec := pg.SettingSpec{Name: name, Description: description, Kind: pg.SettingEnum, Context: uint8(ctx),
		Options: append([]string(nil), options...), Int: -1}
	for i, o := range options {
		if o == def {
			spec.Int = int32(i)
		}
	}
	return &EnumSetting{name: name, def: def, err: declare(name, nil, spec)}
}

// Name is the setting's name.
func (s *EnumSetting) Name() string { return s.name }

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

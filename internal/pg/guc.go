package pg

/*
#include <stdlib.h>
#include "csrc/pggo_abi.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
)

// Kinds and contexts of declared settings: the values of pggo_abi.h.
const (
	SettingInt    = uint8(C.PGGO_GUC_INT)
	SettingBool   = uint8(C.PGGO_GUC_BOOL)
	SettingString = uint8(C.PGGO_GUC_STRING)
	SettingEnum   = uint8(C.PGGO_GUC_ENUM)
	SettingReal   = uint8(C.PGGO_GUC_REAL)

	FlagNoShowAll     = uint32(C.PGGO_GUC_F_NO_SHOW_ALL)
	FlagSuperuserOnly = uint32(C.PGGO_GUC_F_SUPERUSER_ONLY)
	FlagNotInSample   = uint32(C.PGGO_GUC_F_NOT_IN_SAMPLE)
	flagCheck         = uint32(C.PGGO_GUC_F_CHECK)
	unitShift         = C.PGGO_GUC_UNIT_SHIFT

	UnitNone   = uint8(C.PGGO_GUC_UNIT_NONE)
	UnitBytes  = uint8(C.PGGO_GUC_UNIT_BYTE)
	UnitKB     = uint8(C.PGGO_GUC_UNIT_KB)
	UnitMB     = uint8(C.PGGO_GUC_UNIT_MB)
	UnitBlocks = uint8(C.PGGO_GUC_UNIT_BLOCKS)
	UnitMS     = uint8(C.PGGO_GUC_UNIT_MS)
	UnitS      = uint8(C.PGGO_GUC_UNIT_S)
	UnitMin    = uint8(C.PGGO_GUC_UNIT_MIN)

	ContextPostmaster = uint8(C.PGGO_GUC_POSTMASTER)
	ContextSighup     = uint8(C.PGGO_GUC_SIGHUP)
	ContextSuperuser  = uint8(C.PGGO_GUC_SUPERUSER)
	ContextUser       = uint8(C.PGGO_GUC_USER)

	MaxSettings    = int(C.PGGO_MAX_SETTINGS)
	SettingNameLen = int(C.PGGO_SETTING_NAMELEN)
	MaxEnumOptions = int(C.PGGO_MAX_ENUM_OPTIONS)
)

// SettingSpec is a declared setting as the postmaster defines it.
type SettingSpec struct {
	Name, Description      string
	Kind, Context          uint8
	Flags                  uint32 // Flag* bits
	Unit                   uint8  // Unit*: int and real settings
	Int, Min, Max          int32  // int: default and bounds; enum: Int is the default's index
	Real, RealMin, RealMax float64
	Bool                   bool
	String                 string   // string: the default
	Options                []string // enum
	// Check is the Go check hook, or nil: i holds an int or bool (0/1)
	// value in the setting's unit, f a real one, s a string or enum one.
	Check func(i int64, f float64, s string) error
	// Show formats a value for a message (the unit included).
	Show func(i int64, f float64, s string) string
}

var (
	settingMu sync.Mutex
	settings  []SettingSpec
)

// validPart is one dot-separated part of a custom setting name, as
// PostgreSQL's valid_custom_variable_name accepts it.
func validPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '$')) {
			return false
		}
	}
	return true
}

// DeclareSetting records a setting for the init helper's reply, checked
// here so that a mistake is reported with the Go declaration (loader_guc.c
// checks again: it trusts no reply).
func DeclareSetting(s SettingSpec) error {
	parts := strings.Split(s.Name, ".")
	if len(s.Name) > SettingNameLen || len(parts) < 2 {
		return fmt.Errorf("the name must be PREFIX.NAME (the extension's prefix), at most %d bytes", SettingNameLen)
	}
	for _, p := range parts {
		if !validPart(p) {
			return fmt.Errorf("%q is not a valid name part: letters, digits, '_' and '$', not starting with a digit", p)
		}
	}
	if s.Description == "" || strings.IndexByte(s.Description, 0) >= 0 {
		return fmt.Errorf("the description must be non-empty text")
	}
	if s.Context < ContextPostmaster || s.Context > ContextUser {
		return fmt.Errorf("unknown context %d", s.Context)
	}
	switch s.Kind {
	case SettingInt:
		if s.Min > s.Max || s.Int < s.Min || s.Int > s.Max {
			return fmt.Errorf("the default %d is not within [%d, %d]", s.Int, s.Min, s.Max)
		}
	case SettingReal:
		if s.RealMin != s.RealMin || s.RealMax != s.RealMax || s.Real != s.Real {
			return fmt.Errorf("NaN is not a valid default or bound")
		}
		if s.RealMin > s.RealMax || s.Real < s.RealMin || s.Real > s.RealMax {
			return fmt.Errorf("the default %g is not within [%g, %g]", s.Real, s.RealMin, s.RealMax)
		}
	case SettingBool:
	case SettingString:
		if strings.IndexByte(s.String, 0) >= 0 {
			return fmt.Errorf("the default contains a NUL byte")
		}
	case SettingEnum:
		if len(s.Options) == 0 || len(s.Options) > MaxEnumOptions {
			return fmt.Errorf("an enum needs 1 to %d options", MaxEnumOptions)
		}
		seen := map[string]bool{}
		for _, o := range s.Options {
			if o == "" || strings.IndexByte(o, 0) >= 0 || seen[strings.ToLower(o)] {
				return fmt.Errorf("option %q: options must be non-empty and distinct (case-insensitively)", o)
			}
			seen[strings.ToLower(o)] = true
		}
		if s.Int < 0 || int(s.Int) >= len(s.Options) {
			return fmt.Errorf("the default is not one of the options")
		}
	default:
		return fmt.Errorf("unknown kind %d", s.Kind)
	}
	if s.Unit != UnitNone && s.Kind != SettingInt && s.Kind != SettingReal {
		return fmt.Errorf("only integer and real settings have a unit")
	}
	if s.Unit > UnitMin {
		return fmt.Errorf("unknown unit %d", s.Unit)
	}
	// PostgreSQL runs the hook on the default when it defines the setting
	// where Go is loaded, and a rejection there is FATAL: refuse it here.
	if s.Check != nil {
		var i int64
		var str string
		switch s.Kind {
		case SettingInt:
			i = int64(s.Int)
		case SettingBool:
			if s.Bool {
				i = 1
			}
		case SettingString:
			str = s.String
		case SettingEnum:
			str = s.Options[s.Int]
		}
		if err := runCheck(s, i, s.Real, str); err != nil {
			return fmt.Errorf("the default %s is rejected by its check hook: %w", s.show(i, s.Real, str), err)
		}
	}
	settingMu.Lock()
	defer settingMu.Unlock()
	for _, o := range settings {
		if strings.EqualFold(o.Name, s.Name) {
			return fmt.Errorf("a setting of this name is already declared")
		}
	}
	if len(settings) >= MaxSettings {
		return fmt.Errorf("more than %d settings declared", MaxSettings)
	}
	settings = append(settings, s)
	return nil
}

// EncodeSettings is the settings part of the init helper's reply (see
// pggo_abi.h).
func EncodeSettings(list []SettingSpec) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(len(list)))
	str := func(s string) {
		b = binary.NativeEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	i32 := func(v int32) { b = binary.NativeEndian.AppendUint32(b, uint32(v)) }
	f64 := func(v float64) { b = binary.NativeEndian.AppendUint64(b, math.Float64bits(v)) }
	for _, s := range list {
		b = append(b, s.Kind, s.Context)
		flags := s.Flags | uint32(s.Unit)<<unitShift
		if s.Check != nil {
			flags |= flagCheck
		}
		b = binary.NativeEndian.AppendUint32(b, flags)
		str(s.Name)
		str(s.Description)
		switch s.Kind {
		case SettingInt:
			i32(s.Int)
			i32(s.Min)
			i32(s.Max)
		case SettingReal:
			f64(s.Real)
			f64(s.RealMin)
			f64(s.RealMax)
		case SettingBool:
			v := byte(0)
			if s.Bool {
				v = 1
			}
			b = append(b, v)
		case SettingString:
			str(s.String)
		case SettingEnum:
			i32(s.Int)
			b = binary.NativeEndian.AppendUint32(b, uint32(len(s.Options)))
			for _, o := range s.Options {
				str(o)
			}
		}
	}
	return b
}

//export pggo_go_settings
func pggo_go_settings(out **C.char, n *C.size_t) C.int {
	settingMu.Lock()
	b := EncodeSettings(settings)
	settingMu.Unlock()
	// The helper exits right after this and never frees it; a process that
	// defines the settings late (loader_init.c) frees it with free().
	*out = (*C.char)(C.CBytes(b))
	*n = C.size_t(len(b))
	return 0
}

func (s SettingSpec) show(i int64, f float64, str string) string {
	if s.Show != nil {
		return s.Show(i, f, str)
	}
	return fmt.Sprint(i, f, str)
}

func findSetting(name string) (SettingSpec, bool) {
	settingMu.Lock()
	defer settingMu.Unlock()
	for _, s := range settings {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return SettingSpec{}, false
}

// runCheck runs a check hook; a panic is a rejection, not a crash.
func runCheck(s SettingSpec, i int64, f float64, str string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the check hook panicked: %v", r)
		}
	}()
	return s.Check(i, f, str)
}

//export pggo_go_check_setting
func pggo_go_check_setting(name *C.char, i C.int64_t, f C.double, s *C.char, msg **C.char) C.int {
	spec, ok := findSetting(C.GoString(name))
	if !ok || spec.Check == nil {
		return 2
	}
	if err := runCheck(spec, int64(i), float64(f), C.GoString(s)); err != nil {
		*msg = C.CString(err.Error())
		return 1
	}
	return 0
}

// startValue reads a setting as the init helper defined it: the value the
// postmaster will start with.
func startValue(s SettingSpec) (i int64, f float64, str string, err error) {
	if s.Kind == SettingReal {
		if v, ok, err := RealSetting(s.Name); ok || err != nil {
			return 0, v, "", err
		}
	}
	v, _, err := Setting(s.Name)
	if err != nil {
		return 0, 0, "", err
	}
	switch s.Kind {
	case SettingInt:
		i, err = strconv.ParseInt(v, 10, 64)
	case SettingReal:
		f, err = strconv.ParseFloat(v, 64)
	case SettingBool:
		if v == "on" {
			i = 1
		}
	default:
		str = v
	}
	return i, f, v, err
}

//export pggo_go_check_start
func pggo_go_check_start(api *C.pggo_api, errmsg **C.char) C.int {
	useAPI(api)
	settingMu.Lock()
	list := append([]SettingSpec(nil), settings...)
	settingMu.Unlock()
	for _, s := range list {
		if s.Check == nil {
			continue
		}
		i, f, str, err := startValue(s)
		if err == nil {
			if s.Kind == SettingString || s.Kind == SettingEnum {
				err = runCheck(s, 0, 0, str)
			} else {
				err = runCheck(s, i, f, "")
			}
			if err != nil {
				err = fmt.Errorf("guc: setting %q: the start value %s (postgresql.conf, the command line or the default) is rejected by its check hook: %w",
					s.Name, s.show(i, f, str), err)
			}
		} else {
			err = fmt.Errorf("guc: setting %q: reading its start value: %w", s.Name, err)
		}
		if err != nil {
			*errmsg = C.CString(err.Error())
			return 1
		}
	}
	return 0
}

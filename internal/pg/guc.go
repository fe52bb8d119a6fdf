package pg

/*
#include <stdlib.h>
#include "csrc/pggo_abi.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
)

// Kinds and contexts of declared settings: the values of pggo_abi.h.
const (
	SettingInt    = uint8(C.PGGO_GUC_INT)
	SettingBool   = uint8(C.PGGO_GUC_BOOL)
	SettingString = uint8(C.PGGO_GUC_STRING)
	SettingEnum   = uint8(C.PGGO_GUC_ENUM)

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
	Name, Description string
	Kind, Context     uint8
	Int, Min, Max     int32 // int: default and bounds; enum: Int is the default's index
	Bool              bool
	String            string   // string: the default
	Options           []string // enum
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
	for _, s := range list {
		b = append(b, s.Kind, s.Context)
		str(s.Name)
		str(s.Description)
		switch s.Kind {
		case SettingInt:
			i32(s.Int)
			i32(s.Min)
			i32(s.Max)
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
	// The helper process exits right after this: nothing here is freed.
	*out = (*C.char)(C.CBytes(b))
	*n = C.size_t(len(b))
	return 0
}

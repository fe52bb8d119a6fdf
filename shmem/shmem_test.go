package shmem

import (
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

type okType struct {
	A atomic.Int64
	B atomic.Bool
	C [4]struct {
		X float64
		Y [2]uint8
	}
	D complex128
}

type withMutex struct {
	Counts [2]int
	Mu     sync.Mutex
}

func TestCheckType(t *testing.T) {
	cases := map[reflect.Type]string{
		reflect.TypeFor[okType]():                   "",
		reflect.TypeFor[struct{}]():                 "",
		reflect.TypeFor[struct{ S string }]():       ".S is a string",
		reflect.TypeFor[struct{ P *int }]():         ".P is a ptr",
		reflect.TypeFor[struct{ L [2][]int }]():     ".L[] is a slice",
		reflect.TypeFor[struct{ M map[int]int }]():  ".M is a map",
		reflect.TypeFor[struct{ I any }]():          ".I is a interface",
		reflect.TypeFor[struct{ V atomic.Value }](): ".V.v is a interface",
		reflect.TypeFor[struct{ Ch chan int }]():    ".Ch is a chan",
		reflect.TypeFor[struct{ F func() }]():       ".F is a func",
		reflect.TypeFor[withMutex]():                "shmem.withMutex.Mu has type sync.Mutex",
	}
	for typ, want := range cases {
		err := CheckType(typ)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%v: %v, want %q", typ, err, want)
		}
	}
}

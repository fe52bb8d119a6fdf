// Package hooks holds the process-wide registries that the public packages
// fill during package initialisation and the C boundary reads later. It exists
// so that package pggo (user facing) and internal/pg (the cgo layer) need not
// import each other.
package hooks

import "sync"

var (
	mu    sync.Mutex
	inits []func() error
)

// AddInit records an OnInit hook.
func AddInit(fn func() error) {
	mu.Lock()
	defer mu.Unlock()
	inits = append(inits, fn)
}

// Inits returns the OnInit hooks in registration order.
func Inits() []func() error {
	mu.Lock()
	defer mu.Unlock()
	return append([]func() error(nil), inits...)
}

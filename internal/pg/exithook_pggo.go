//go:build pggo

package pg

import _ "unsafe" // for go:linkname

// exitHook has the layout of internal/runtime/exithook.Hook.
type exitHook struct {
	F            func()
	RunOnFailure bool
}

// Go runs its exit hooks inside os.Exit, before the exit system call; the
// runtime offers no public way to add one, so `pggo build` links with
// -checklinkname=0 and the pggo tag, and this file adds two (internal/build
// checks the Go version it was written for). Hooks run last-added first and
// are not told the exit code: the one added last runs only for code 0, the
// other for any other code.
//
//go:linkname exithookAdd internal/runtime/exithook.Add
func exithookAdd(h exitHook)

func init() {
	exithookAdd(exitHook{F: func() { onGoExit(false) }, RunOnFailure: true})
	exithookAdd(exitHook{F: func() { onGoExit(true) }})
}

// ExitHooksInstalled reports whether os.Exit is intercepted in this build.
const ExitHooksInstalled = true

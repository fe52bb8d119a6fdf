//go:build !pggo

package pg

// ExitHooksInstalled reports whether os.Exit is intercepted in this build:
// only libraries built by `pggo build` (the pggo tag) intercept it.
const ExitHooksInstalled = false

var _ = onGoExit // used by exithook_pggo.go

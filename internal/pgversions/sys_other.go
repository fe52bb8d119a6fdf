//go:build !unix

package pgversions

import (
	"context"
	"errors"
	"os/exec"
)

// serverUser is ourselves off Unix, where PostgreSQL runs as whoever
// starts it.
type serverUser struct{}

func lookupServerUser() (*serverUser, error) {
	return nil, errors.New("pgversions: verifying a PostgreSQL install needs Linux")
}

func (u *serverUser) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

func (u *serverUser) switches() bool { return false }

func (u *serverUser) own(path string) error { return nil }

func (in *installer) grantTraverse(path string) error { return nil }

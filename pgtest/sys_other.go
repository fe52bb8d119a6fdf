//go:build !linux

package pgtest

// removeShm is a no-op off Linux: a killed cluster's small segment leaks.
func removeShm(id int) {}

// ramDir finds no RAM-backed directory off Linux.
func ramDir() string { return "" }

package pg

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

// csrc holds the loader: the library users preload, split by PostgreSQL
// concept (pggo_loader.h lists the files). `pggo build` compiles it with
// PostgreSQL's headers, next to the generated trampolines.
//
//go:embed csrc/*.c csrc/*.h
var csrc embed.FS

// ABIHeader is csrc/pggo_abi.h, shared by the loader and this package.
//
//go:embed csrc/pggo_abi.h
var ABIHeader string

// LoaderFiles returns the loader's source files by name (.c and .h).
func LoaderFiles() map[string]string {
	files := map[string]string{}
	entries, _ := fs.ReadDir(csrc, "csrc")
	for _, e := range entries {
		data, err := fs.ReadFile(csrc, "csrc/"+e.Name())
		if err == nil {
			files[e.Name()] = string(data)
		}
	}
	return files
}

// LoaderCFiles returns the names of the loader's C files, sorted.
func LoaderCFiles() []string {
	var names []string
	for n := range LoaderFiles() {
		if strings.HasSuffix(n, ".c") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

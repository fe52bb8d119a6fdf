package pg

import _ "embed"

// LoaderSource is csrc/pggo_loader.c: the library users preload. `pggo build`
// compiles it with PostgreSQL's headers, next to the generated trampolines.
//
//go:embed csrc/pggo_loader.c
var LoaderSource string

// ABIHeader is csrc/pggo_abi.h, shared by the loader and this package.
//
//go:embed csrc/pggo_abi.h
var ABIHeader string

package main

import (
	"github.com/pggo/pggo/fmgr"
	"github.com/pggo/pggo/internal/pg"
)

func init() {
	fmgr.Register("testext_param_roundtrip", "(param bytea, typ oid) RETURNS text", paramRoundTrip)
}

// paramRoundTrip drives the loader's parameter conversion with raw wire
// bytes (the fuzz test's target).
func paramRoundTrip(args *fmgr.Args) (any, error) {
	var param []byte
	var typ int64
	if err := args.Scan(&param, &typ); err != nil {
		return nil, err
	}
	text, isNull, err := pg.ParamRoundTrip(param, uint32(typ))
	if err != nil || isNull {
		return nil, err
	}
	return text, nil
}

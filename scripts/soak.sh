#!/usr/bin/env bash
# make soak: the fault suite at full size (rewrites RELIABILITY.md), then the
# fuzzer of the loader's parameter path inside a server; its figures are
# appended to RELIABILITY.md.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-120s}
$GO test -count=1 -timeout 90m ./internal/fault -args -soak -reliability "$PWD/RELIABILITY.md"
suite=$?
log=$(mktemp)
$GO test -run '^$' -fuzz FuzzParamPath -fuzztime "$FUZZTIME" -parallel 1 ./internal/integration >"$log" 2>&1
fuzz=$?
last=$(grep -E '^fuzz: elapsed' "$log" | tail -1)
{
	echo
	echo "## Fuzzing the loader's parameter path"
	echo
	echo "\`FuzzParamPath\` (internal/integration/fuzz_test.go) sends random wire kinds, declared types, target"
	echo "types and bytes through the loader's real parameter conversion inside a PostgreSQL server"
	echo "(\`testext_param_roundtrip\`); any outcome but a value or an ERROR fails. \`make test\` runs 3000"
	echo "fixed random inputs (\`TestParamPathRandom\`)."
	echo
	echo "- fuzz time: $FUZZTIME; result: $( [ $fuzz -eq 0 ] && echo PASS || echo FAIL )"
	echo "- last progress line: \`$last\`"
} >>RELIABILITY.md
[ $fuzz -ne 0 ] && tail -40 "$log"
rm -f "$log"
exit $(( suite != 0 || fuzz != 0 ))

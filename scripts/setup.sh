#!/usr/bin/env bash
# Installs what pggo needs to build and test, if it is missing: PostgreSQL 15
# (server) and its server headers, from Debian's packages. Idempotent.
set -euo pipefail

need=()
command -v go >/dev/null 2>&1 || { echo "setup: Go is missing: install Go 1.26 (https://go.dev/dl/)" >&2; exit 1; }
command -v cc >/dev/null 2>&1 || need+=(gcc)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
[ -f /usr/include/postgresql/15/server/postgres.h ] || need+=(postgresql-server-dev-15)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client-15)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
  # Installing the headers can upgrade the server package: a cluster started
  # before this point runs the old binaries and must be restarted.
fi

# Debian's packages create the postgres OS user; the tests run the server as it when root.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "setup: the postgres OS user is missing (the postgresql-15 package creates it)" >&2
  exit 1
fi
# pg_config on PATH must be the version we build against.
if ! pg_config --version 2>/dev/null | grep -q "PostgreSQL 15"; then
  echo "setup: pg_config on PATH is not PostgreSQL 15: $(pg_config --version 2>&1)" >&2
  exit 1
fi

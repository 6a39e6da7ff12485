#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) exist, so the test suite
# can start its own throw-away cluster (codeyard/testing/postgres.py). Idempotent: does nothing
# when they are already installed. Otherwise installs Debian's `postgresql` package, without
# letting the package create or start its own "main" cluster: the tests never use it, and a
# service left running on port 5432 would be a leaked process.
set -euo pipefail

have_binaries() {
    local dir
    local -a dirs
    if [[ -n "${CODEYARD_PG_BIN:-}" ]]; then
        dirs=("$CODEYARD_PG_BIN")
    else
        dirs=()
        if command -v initdb >/dev/null 2>&1; then
            dirs+=("$(dirname "$(readlink -f "$(command -v initdb)")")")
        fi
        dirs+=(/usr/lib/postgresql/*/bin /usr/pgsql-*/bin /usr/local/pgsql/bin)
    fi
    for dir in "${dirs[@]}"; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" && -x "$dir/psql" ]]; then
            echo "PostgreSQL binaries found in $dir"
            return 0
        fi
    done
    return 1
}

if have_binaries; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL binaries not found and apt-get is unavailable; install PostgreSQL" \
        "(initdb, pg_ctl, postgres, psql) or set CODEYARD_PG_BIN" >&2
    exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "PostgreSQL binaries not found; run as root (or with sudo) to apt-get install them" >&2
        exit 1
    fi
fi

echo "Installing PostgreSQL from Debian packages..."
# postgresql-common reads this directory: no default cluster, so nothing gets started.
"${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" |
    "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/50-codeyard-no-main-cluster.conf \
        >/dev/null

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    postgresql

if ! have_binaries; then
    echo "apt-get installed postgresql but its binaries were not found" >&2
    exit 1
fi

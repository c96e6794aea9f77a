#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server on 127.0.0.1 and
# LICENSING_TEST_POSTGRES_URL pointing at it; the server and its data are removed afterwards.
#   scripts/with-postgres.sh cargo test -p licensing-server
# Installs Debian's PostgreSQL when no server binaries are found.
set -euo pipefail

find_bindir() {
    if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    done
    return 1
}

if ! bindir=$(find_bindir); then
    echo "with-postgres: installing PostgreSQL from Debian" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql >/dev/null
    bindir=$(find_bindir) || { echo "with-postgres: no initdb after installing postgresql" >&2; exit 1; }
fi

workdir=$(mktemp -d /tmp/licensing-pg.XXXXXX)
# PostgreSQL refuses to run as root: run it as the `postgres` user the package creates.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$workdir"
    as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

stop() {
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$workdir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$workdir"
}
trap stop EXIT

"${as_pg[@]}" "$bindir/initdb" -D "$workdir/data" -U postgres -A trust --no-sync >/dev/null
# max_connections: every test opens its own pool (16 connections at most).
"${as_pg[@]}" "$bindir/pg_ctl" -D "$workdir/data" -w -l "$workdir/log" \
    -o "-h 127.0.0.1 -p $port -k $workdir -c max_connections=400 -c fsync=${LICENSING_PG_FSYNC:-on}" \
    start >/dev/null

export LICENSING_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
"$@"

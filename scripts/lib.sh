# Shared by scripts/setup.sh, scripts/demo.sh, tests/run.sh and bench/: installing what
# is missing, building, and starting/stopping throwaway services on loopback.
# Source it; it defines functions and variables, and runs nothing by itself.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The PostgreSQL major version to build for and test against (KAFKA_FDW_PG_VERSION):
# 15 is this machine's own (Debian 12's); 17 and 18 run in Debian roots (below).
PG_VERSION="${KAFKA_FDW_PG_VERSION:-15}"
# The Debian release that ships each version that is not this machine's.
declare -A DEBIAN_SUITES=([17]=trixie [18]=sid)
# Where Debian roots are kept between runs (KAFKA_FDW_ROOTS), one directory per version.
ROOTS_DIR="${KAFKA_FDW_ROOTS:-/var/cache/kafka_fdw/roots}"
DEBIAN_ROOT=""
PG_ROOT=""
if [[ "$PG_VERSION" == 15 ]]; then
    # For development side by side, KAFKA_FDW_PG_ROOT may name a copy of the machine's
    # PostgreSQL (it is relocatable: `cp -a /usr/lib/postgresql/15 /usr/share/postgresql/15`
    # into ROOT/usr/…), so that installing the extension there leaves other copies alone.
    PG_ROOT="${KAFKA_FDW_PG_ROOT:-}"
elif [[ -n "${DEBIAN_SUITES[$PG_VERSION]:-}" ]]; then
    DEBIAN_ROOT="$ROOTS_DIR/${DEBIAN_SUITES[$PG_VERSION]}-pg$PG_VERSION"
else
    echo "KAFKA_FDW_PG_VERSION=$PG_VERSION: supported are 15, 17 and 18" >&2
    exit 1
fi
# PostgreSQL's programs, as the system it runs on sees them (inside its root, if any).
PG_BIN="$PG_ROOT/usr/lib/postgresql/$PG_VERSION/bin"
PG_CONFIG="$PG_BIN/pg_config"
[[ -n "$PG_ROOT$DEBIAN_ROOT" ]] || PG_CONFIG=/usr/bin/pg_config
PG_REGRESS="$PG_ROOT/usr/lib/postgresql/$PG_VERSION/lib/pgxs/src/test/regress/pg_regress"
# Where cargo builds (CARGO_TARGET_DIR, if set, as cargo itself honours it).
KAFKA_TOOL="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kafka-tool"
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo libssl-dev pkg-config python3 stunnel4 openssl debootstrap)
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\n==> %s\n' "$*" >&2; }

# A TCP port nothing listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install_apt_packages() {
    local missing=()
    for package in "${APT_PACKAGES[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if ((${#missing[@]})); then
        log "Installing Debian packages: ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
}

# cargo-pgrx and tansu are slow to build (about 7 and 11 minutes), so they build side by
# side and their binaries stay in ~/.cargo/bin for the next run.
install_cargo_tools() {
    local pids=() logs_dir
    logs_dir="$(mktemp -d)"
    if ! cargo pgrx --version 2>/dev/null | grep -q ' 0\.18\.0'; then
        log "Building cargo-pgrx 0.18.0 (about 7 minutes)"
        cargo install cargo-pgrx --version 0.18.0 --locked >"$logs_dir/cargo-pgrx.log" 2>&1 &
        pids+=($!)
    fi
    if ! tansu --version 2>/dev/null | grep -q '0\.6\.0'; then
        log "Building the tansu 0.6.0 broker with SQLite storage (about 11 minutes)"
        cargo install tansu --version 0.6.0 --locked --features libsql >"$logs_dir/tansu.log" 2>&1 &
        pids+=($!)
    fi
    local failed=0
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    if ((failed)); then
        tail -n 40 "$logs_dir"/*.log >&2
        return 1
    fi
}

# PostgreSQL 17 and 18 run in Debian roots: a debootstrap of the Debian release that ships
# them, in ROOTS_DIR, made once per machine and reused (a root is complete once it holds
# .kafka_fdw-ready; what it lacks of ROOT_PACKAGES is installed on each use). Nothing of
# trixie or sid is ever installed into this machine's own Debian 12. PostgreSQL's side
# runs in the root: cargo builds the extension there with the machine's Rust toolchain
# (~/.cargo and ~/.rustup; built for Debian 12's C library, it runs on newer ones) and
# installs it into the root's PostgreSQL, whose clusters run as the root's user postgres
# and listen on a Unix socket in a service directory under /tmp, which the root shares;
# the clients are the root's too (pg_regress, and psql through the wrappers of
# root_clients: psql 15 cannot COPY FROM STDIN into 18, say). Brokers, kafka-tool and
# the test scripts run here, as for 15; the shell commands tests run through psql's `\!`
# run in the root, which sees the paths of ROOT_SHARED at their own places.
ROOT_SHARED=(/tmp "$HOME/.cargo" "$HOME/.rustup" "$REPO_ROOT" ${CARGO_TARGET_DIR:+"$CARGO_TARGET_DIR"})
ROOT_PACKAGES=(postgresql-common "postgresql-$PG_VERSION" "postgresql-server-dev-$PG_VERSION"
    libclang-dev clang build-essential pkg-config libssl-dev zlib1g-dev ca-certificates sudo)

# in_root ROOT CMD…: runs CMD as root in the Debian root ROOT, in the current directory,
# in a mount namespace of its own, so that the root's mounts (/proc, /dev, and the paths
# of ROOT_SHARED at their own places) vanish with the last process that uses them: a
# server started this way keeps them while it runs.
# cargo-pgrx's settings there are the root's own (~/.pgrx, whatever PGRX_HOME says here).
in_root() {
    local root="$1"
    shift
    unshare --mount --propagation private -- bash -euc '
        root=$1 cwd=$2 shared=$3
        shift 3
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        for ((; shared > 0; shared--)); do
            mkdir -p "$root$1"
            mount --bind "$1" "$root$1"
            shift
        done
        exec chroot "$root" /usr/bin/env -u PGRX_HOME /bin/sh -c '\''cd "$0" 2>/dev/null || cd /; exec "$@"'\'' "$cwd" "$@"
    ' in_root "$root" "$PWD" "${#ROOT_SHARED[@]}" "${ROOT_SHARED[@]}" "$@"
}

# pg_system CMD…: runs CMD (as root) on the system PostgreSQL $PG_VERSION is installed on:
# this machine, or its Debian root.
pg_system() {
    if [[ -n "$DEBIAN_ROOT" ]]; then
        in_root "$DEBIAN_ROOT" "$@"
    else
        "$@"
    fi
}

# as_postgres CMD…: runs CMD as that system's user postgres, with sudo's clean
# environment (a server must not inherit RUST_BACKTRACE, say: pgrx would add backtraces
# to its errors' details).
as_postgres() {
    pg_system sudo -u postgres "$@"
}

# The mirror this machine's apt uses for Debian itself.
debian_mirror() {
    apt-get indextargets --format '$(SITE) $(LABEL)' | awk '$2 == "Debian" { print $1; exit }'
}

# Makes DEBIAN_ROOT unless it is there (about 3 minutes), and installs what it lacks.
make_debian_root() {
    local root="$DEBIAN_ROOT" partial="$DEBIAN_ROOT.partial" installed missing
    if [[ ! -f "$root/.kafka_fdw-ready" ]]; then
        log "Making a Debian ${DEBIAN_SUITES[$PG_VERSION]} root for PostgreSQL $PG_VERSION in $root"
        rm -rf "$root" "$partial"
        mkdir -p "$ROOTS_DIR"
        debootstrap --variant=minbase "${DEBIAN_SUITES[$PG_VERSION]}" "$partial" "$(debian_mirror)" >"$root.log" 2>&1 ||
            { tail -n 40 "$root.log" >&2; return 1; }
        # Packages never start services in the root (one on port 5432 would be this
        # machine's), and installing the server makes no cluster.
        printf '#!/bin/sh\nexit 101\n' >"$partial/usr/sbin/policy-rc.d"
        chmod 755 "$partial/usr/sbin/policy-rc.d"
        # sid's Release files expire a week after they are signed, which a mirror that
        # serves a snapshot (or a clock ahead of it) would refuse.
        echo 'Acquire::Check-Valid-Until "false";' >"$partial/etc/apt/apt.conf.d/99kafka_fdw"
        mkdir -p "$partial/etc/postgresql-common/createcluster.d"
        echo 'create_main_cluster = false' >"$partial/etc/postgresql-common/createcluster.d/kafka_fdw.conf"
        touch "$partial/.kafka_fdw-ready"
        mv "$partial" "$root"
    fi
    installed="$(in_root "$root" dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' "${ROOT_PACKAGES[@]}" 2>/dev/null || true)"
    # Names and name servers as this machine has them (sudo looks its host name up).
    cp /etc/hosts /etc/resolv.conf "$root/etc/"
    missing="$(awk '$1 == "ii" { print $2 }' <<<"$installed" | sort | comm -13 - <(printf '%s\n' "${ROOT_PACKAGES[@]}" | sort))"
    if [[ -n "$missing" ]]; then
        log "Installing into the root: $(echo $missing)"
        in_root "$root" apt-get update -q
        in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
    fi
}

# cargo ARGS… for PostgreSQL $PG_VERSION, on the system it is installed on: in a Debian
# root with a target directory of its own (what it builds links the root's C library).
pg_cargo() {
    if [[ -n "$DEBIAN_ROOT" ]]; then
        in_root "$DEBIAN_ROOT" env CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/${DEBIAN_ROOT##*/}" cargo "$@"
    else
        cargo "$@"
    fi
}

setup_machine() {
    install_apt_packages
    install_cargo_tools
    [[ -z "$DEBIAN_ROOT" ]] || make_debian_root
    if ! pg_system sh -c 'grep -qs "^pg$0" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"' "$PG_VERSION"; then
        pg_system cargo pgrx init "--pg$PG_VERSION" "$PG_CONFIG"
    fi
}

build_tool() {
    log "Building kafka-tool"
    (cd "$REPO_ROOT" && cargo build --release --locked -p kafka-tool)
}

install_extension() {
    log "Building and installing the kafka_fdw extension"
    (cd "$REPO_ROOT" && pg_cargo pgrx install --release --pg-config "$PG_CONFIG")
}

# Everything started here is stopped by stop_services, which callers put in an EXIT trap.
SERVICE_DIR=""
SERVICE_PIDS=()
PG_DATA=""

make_service_dir() {
    if [[ -z "$SERVICE_DIR" ]]; then
        SERVICE_DIR="$(mktemp -d /tmp/kafka_fdw.XXXXXX)"
        chmod 755 "$SERVICE_DIR"
    fi
}

stop_services() {
    if [[ -n "$PG_DATA" && -f "$PG_DATA/postmaster.pid" ]]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
    fi
    for pid in "${SERVICE_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVICE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVICE_PIDS=()
}

# Starts tansu with SQLite storage in a fresh directory; sets TANSU_BROKERS.
start_tansu() {
    make_service_dir
    local port
    port="$(free_port)"
    run_tansu "$SERVICE_DIR/tansu" "$port" "$port"
    TANSU_BROKERS="127.0.0.1:$port"
}

# A second tansu, for tests that delete topics: tansu 0.6.0's `topic delete` deletes every
# topic of the broker. Sets SCRATCH_BROKERS.
start_scratch_tansu() {
    local port
    port="$(free_port)"
    run_tansu "$SERVICE_DIR/scratch-tansu" "$port" "$port"
    SCRATCH_BROKERS="127.0.0.1:$port"
}

# run_tansu DIR LISTEN_PORT ADVERTISED_PORT [tansu broker options…]: starts tansu on the
# sqlite file in DIR and waits until it is ready; sets TANSU_PID.
run_tansu() {
    local dir="$1" port="$2" advertised="$3"
    shift 3
    mkdir -p "$dir"
    # tansu reads a .env file from its working directory: start it in an empty one.
    (cd "$dir" && exec tansu broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$advertised" \
        --storage-engine sqlite://tansu.db "$@" >"$dir/tansu.log" 2>&1) &
    TANSU_PID=$!
    SERVICE_PIDS+=("$TANSU_PID")
    for _ in $(seq 100); do
        grep -q 'ready in' "$dir/tansu.log" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$dir/tansu.log" >&2
    echo "tansu did not start" >&2
    return 1
}

# A second tansu that only speaks SASL/SCRAM-SHA-512 over TLS, which stunnel terminates
# in front of it (tansu 0.6.0 cannot do TLS itself). Users are created, and topic
# TOPIC filled from FILE (round robin over 2 partitions), before authentication is on:
#   start_secure_tansu USER PASSWORD TOPIC FILE
# Sets SECURE_BROKERS (the TLS port), SECURE_CA (PEM of the authority that signed the broker's
# certificate) and UNTRUSTED_CA (PEM of an unrelated one).
start_secure_tansu() {
    local dir="$SERVICE_DIR/secure-tansu" plain tls
    plain="$(free_port)"
    tls="$(free_port)"
    mkdir -p "$dir"
    run_tansu "$dir" "$plain" "$plain"
    tansu user create "$1" "$2" --broker "tcp://127.0.0.1:$plain" >/dev/null
    tansu topic create "$3" --partitions 2 --broker "tcp://127.0.0.1:$plain" >/dev/null
    "$KAFKA_TOOL" produce --brokers "127.0.0.1:$plain" --topic "$3" --round-robin --file "$4" >/dev/null
    kill "$TANSU_PID"
    wait "$TANSU_PID" 2>/dev/null || true
    rm -f "$dir/tansu.log"
    run_tansu "$dir" "$plain" "$tls" --authentication
    tls_front "$dir" "$plain" "$tls"
    SECURE_BROKERS="127.0.0.1:$tls"
    SECURE_CA="$dir/ca.pem"
    # A certificate authority the broker's certificate is not from, for failing tests.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=untrusted \
        -keyout "$dir/untrusted-key.pem" -out "$dir/untrusted.pem" 2>/dev/null
    UNTRUSTED_CA="$dir/untrusted.pem"
}

# stunnel terminating TLS on port TLS in front of the plain TCP port PLAIN:
#   tls_front DIR PLAIN TLS
# with a new certificate authority (DIR/ca.pem, what clients trust) and a certificate
# for 127.0.0.1 it signed (rustls, unlike OpenSSL, refuses a CA certificate as the
# server's own).
tls_front() {
    local dir="$1" plain="$2" tls="$3"
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kafka_fdw-test-ca \
        -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$dir/key.pem" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
        -days 2 -extfile "$dir/server.ext" -out "$dir/cert.pem" 2>/dev/null
    cat >"$dir/stunnel.conf" <<CONF
foreground = yes
pid =
[front]
accept = 127.0.0.1:$tls
connect = 127.0.0.1:$plain
cert = $dir/cert.pem
key = $dir/key.pem
CONF
    stunnel4 "$dir/stunnel.conf" >"$dir/stunnel.log" 2>&1 &
    SERVICE_PIDS+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$tls") 2>/dev/null && break
        sleep 0.1
    done
}

# HTTPS in front of the registry at KAFKA_REGISTRY_URL (http://127.0.0.1:PORT); exports
# KAFKA_TLS_REGISTRY_URL and KAFKA_TLS_REGISTRY_CA (PEM file of the authority it trusts).
start_tls_registry() {
    local tls
    tls="$(free_port)"
    tls_front "$SERVICE_DIR/tls-registry" "${KAFKA_REGISTRY_URL##*:}" "$tls"
    KAFKA_TLS_REGISTRY_URL="https://127.0.0.1:$tls"
    KAFKA_TLS_REGISTRY_CA="$SERVICE_DIR/tls-registry/ca.pem"
    export KAFKA_TLS_REGISTRY_URL KAFKA_TLS_REGISTRY_CA
}

# Creates a topic on tansu: create_topic NAME PARTITIONS
create_topic() {
    tansu topic create "$1" --partitions "$2" --broker "tcp://$TANSU_BROKERS" >/dev/null
}

# Hosts a librdkafka mock cluster in kafka-tool; sets MOCK_BROKERS and MOCK_CONTROL.
start_mock() {
    make_service_dir
    local address_file="$SERVICE_DIR/mock.address"
    "$KAFKA_TOOL" mock --address-file "$address_file" "$@" >"$SERVICE_DIR/mock.log" 2>&1 &
    SERVICE_PIDS+=($!)
    for _ in $(seq 100); do
        [[ -f "$address_file" ]] && break
        sleep 0.1
    done
    MOCK_BROKERS="$(sed -n 's/^bootstrap=//p' "$address_file")"
    MOCK_CONTROL="$(sed -n 's/^control=//p' "$address_file")"
    [[ -n "$MOCK_BROKERS" ]]
}

# Hosts an in-memory Confluent-compatible Schema Registry in kafka-tool; exports
# KAFKA_REGISTRY_URL (http://127.0.0.1:PORT). With --user U --password P it requires
# HTTP basic auth.
start_registry() {
    make_service_dir
    local address_file="$SERVICE_DIR/registry.address"
    rm -f "$address_file"
    "$KAFKA_TOOL" registry --address-file "$address_file" "$@" >"$SERVICE_DIR/registry.log" 2>&1 &
    SERVICE_PIDS+=($!)
    for _ in $(seq 100); do
        [[ -f "$address_file" ]] && break
        sleep 0.1
    done
    if [[ ! -s "$address_file" ]]; then
        cat "$SERVICE_DIR/registry.log" >&2
        echo "the schema registry did not start" >&2
        return 1
    fi
    KAFKA_REGISTRY_URL="$(<"$address_file")"
    export KAFKA_REGISTRY_URL
}

# For a Debian root: puts a wrapper of each of its PostgreSQL's programs (psql, createdb,
# pg_isready, …) first in PATH, running it in the root.
root_clients() {
    local bin="$SERVICE_DIR/pg-bin" program
    mkdir -p "$bin"
    for program in "$DEBIAN_ROOT$PG_BIN"/*; do
        program="${program##*/}"
        printf '#!/usr/bin/env bash\nKAFKA_FDW_PG_VERSION=%q KAFKA_FDW_ROOTS=%q source %q\nin_root "$DEBIAN_ROOT" %q "$@"\n' \
            "$PG_VERSION" "$ROOTS_DIR" "$REPO_ROOT/scripts/lib.sh" "$PG_BIN/$program" >"$bin/$program"
        chmod 755 "$bin/$program"
    done
    export PATH="$bin:$PATH"
}

# Starts a throwaway PostgreSQL $PG_VERSION cluster as user postgres, listening only on a
# Unix socket in the service directory; sets PGHOST, PGPORT, PGUSER for psql (the
# server's version's, see root_clients).
start_postgres() {
    make_service_dir
    [[ -z "$DEBIAN_ROOT" ]] || root_clients
    PG_DATA="$SERVICE_DIR/pgdata"
    pg_system chown postgres "$SERVICE_DIR"
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >"$SERVICE_DIR/initdb.log"
    export PGPORT PGHOST="$SERVICE_DIR" PGUSER=postgres
    PGPORT="$(free_port)"
    pg_start
}

# Starts (again) the cluster made by start_postgres. The import scheduler works in
# database $SCHEDULER_DATABASE.
SCHEDULER_DATABASE=kafka_fdw_scheduler
pg_start() {
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -l "$SERVICE_DIR/postgres.log" \
        -o "-p $PGPORT -k $SERVICE_DIR -c listen_addresses='' -c fsync=off -c shared_preload_libraries=kafka_fdw -c kafka_fdw.scheduler_database=$SCHEDULER_DATABASE" \
        start >/dev/null
}

pg_stop() {
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -m fast stop >/dev/null
}

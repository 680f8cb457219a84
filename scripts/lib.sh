# Shared by scripts/setup.sh, scripts/demo.sh, tests/run.sh and bench/: installing what
# is missing, building, and starting/stopping throwaway services on loopback.
# Source it; it defines functions and variables, and runs nothing by itself.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The PostgreSQL installation to build for and test against: Debian's by default. For
# development side by side, KAFKA_FDW_PG_ROOT may name a copy of it (PostgreSQL is
# relocatable: `cp -a /usr/lib/postgresql/15 /usr/share/postgresql/15` into ROOT/usr/…),
# so that installing the extension there leaves other copies alone.
PG_ROOT="${KAFKA_FDW_PG_ROOT:-}"
PG_CONFIG="$PG_ROOT/usr/lib/postgresql/15/bin/pg_config"
[[ -n "$PG_ROOT" ]] || PG_CONFIG=/usr/bin/pg_config
PG_BIN="$PG_ROOT/usr/lib/postgresql/15/bin"
PG_REGRESS="$PG_ROOT/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress"
# Where cargo builds (CARGO_TARGET_DIR, if set, as cargo itself honours it).
KAFKA_TOOL="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kafka-tool"
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo libssl-dev pkg-config python3 stunnel4 openssl)
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
    if ! grep -qs '^pg15' "$HOME/.pgrx/config.toml"; then
        cargo pgrx init --pg15 "$PG_CONFIG"
    fi
}

setup_machine() {
    install_apt_packages
    install_cargo_tools
}

build_tool() {
    log "Building kafka-tool"
    (cd "$REPO_ROOT" && cargo build --release --locked -p kafka-tool)
}

install_extension() {
    log "Building and installing the kafka_fdw extension"
    (cd "$REPO_ROOT" && cargo pgrx install --release --pg-config "$PG_CONFIG")
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
        sudo -u postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
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
# KAFKA_REGISTRY_URL (http://127.0.0.1:PORT) and KAFKA_REGISTRY_LOG (its log: a line per
# request). Options go to `kafka-tool registry`: --user U --password P (it requires HTTP
# basic auth), --delay-ms MS (it answers late).
start_registry() {
    make_service_dir
    local dir
    dir="$(mktemp -d "$SERVICE_DIR/registry.XXXXXX")"
    "$KAFKA_TOOL" registry --address-file "$dir/address" "$@" >"$dir/log" 2>&1 &
    SERVICE_PIDS+=($!)
    for _ in $(seq 100); do
        [[ -f "$dir/address" ]] && break
        sleep 0.1
    done
    if [[ ! -s "$dir/address" ]]; then
        cat "$dir/log" >&2
        echo "the schema registry did not start" >&2
        return 1
    fi
    KAFKA_REGISTRY_URL="$(<"$dir/address")"
    KAFKA_REGISTRY_LOG="$dir/log"
    export KAFKA_REGISTRY_URL KAFKA_REGISTRY_LOG
}

# Starts a throwaway PostgreSQL 15 cluster as user postgres, listening only on a Unix
# socket in the service directory; sets PGHOST, PGPORT, PGUSER for psql.
start_postgres() {
    make_service_dir
    PG_DATA="$SERVICE_DIR/pgdata"
    chown postgres "$SERVICE_DIR"
    sudo -u postgres "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >"$SERVICE_DIR/initdb.log"
    export PGPORT PGHOST="$SERVICE_DIR" PGUSER=postgres
    PGPORT="$(free_port)"
    pg_start
}

# Starts (again) the cluster made by start_postgres. The import scheduler works in
# database $SCHEDULER_DATABASE.
SCHEDULER_DATABASE=kafka_fdw_scheduler
pg_start() {
    sudo -u postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -l "$SERVICE_DIR/postgres.log" \
        -o "-p $PGPORT -k $SERVICE_DIR -c listen_addresses='' -c fsync=off -c shared_preload_libraries=kafka_fdw -c kafka_fdw.scheduler_database=$SCHEDULER_DATABASE" \
        start >/dev/null
}

pg_stop() {
    sudo -u postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -m fast stop >/dev/null
}

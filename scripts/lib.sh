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
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo libssl-dev pkg-config python3 stunnel4 openssl
    openjdk-17-jre-headless maven curl debootstrap)
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\n==> %s\n' "$*" >&2; }

# A TCP port nothing listens on right now, below the range the kernel gives outgoing
# connections: a service restarted on its port (a Kafka node in the failover tests)
# could otherwise find it taken by a client that, retrying to reach that very port while
# it was closed, was given it as its own and connected to itself.
free_port() {
    python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
while True:
    port = random.randrange(10000, low)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
PY
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

# pgrx's build scripts find PostgreSQL through this (else through ~/.pgrx/config.toml,
# which only cargo-pgrx writes), so the extension compiles before cargo-pgrx is there.
export PGRX_PG_CONFIG_PATH="$PG_CONFIG"

# cargo-pgrx is slow to build, so setup_machine starts its build in the background,
# where it runs while kafka-tool and the extension compile; await_cargo_pgrx waits for
# it. It is built in the dev profile, in a third of the release build's time (it only
# drives cargo and writes the extension's SQL script), and stays in ~/.cargo/bin.
CARGO_PGRX_BUILD=""
start_cargo_pgrx_build() {
    cargo pgrx --version 2>/dev/null | grep -q ' 0\.18\.0' && return 0
    log "Building cargo-pgrx 0.18.0 in the background"
    CARGO_PGRX_LOG="$(mktemp)"
    cargo install cargo-pgrx --version 0.18.0 --locked --debug >"$CARGO_PGRX_LOG" 2>&1 &
    CARGO_PGRX_BUILD=$!
    # A run that ends before it needs cargo-pgrx stops the build too.
    SERVICE_PIDS+=("$CARGO_PGRX_BUILD")
}

await_cargo_pgrx() {
    if [[ -n "$CARGO_PGRX_BUILD" ]]; then
        log "Waiting for cargo-pgrx"
        if ! wait "$CARGO_PGRX_BUILD"; then
            tail -n 40 "$CARGO_PGRX_LOG" >&2
            echo "cargo-pgrx did not build" >&2
            return 1
        fi
        CARGO_PGRX_BUILD=""
    fi
    # pgrx reads the server headers through this pg_config and `cargo pgrx test` installs
    # into its directories: for 15 always Debian's (any copy has the same headers).
    local config="$PG_CONFIG"
    [[ -n "$DEBIAN_ROOT" ]] || config=/usr/bin/pg_config
    if ! pg_system sh -c 'grep -qs "^pg$0" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"' "$PG_VERSION"; then
        pg_system cargo pgrx init "--pg$PG_VERSION" "$config"
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
    install_kafka
    start_cargo_pgrx_build
    [[ -z "$DEBIAN_ROOT" ]] || make_debian_root
}

build_tool() {
    log "Building kafka-tool"
    (cd "$REPO_ROOT" && cargo build --release --locked -p kafka-tool)
}

install_extension() {
    log "Building and installing the kafka_fdw extension"
    # The build that cargo pgrx install runs, made first, since it needs no cargo-pgrx.
    (cd "$REPO_ROOT" && pg_cargo build --release --locked --lib --features "pg$PG_VERSION" --no-default-features)
    await_cargo_pgrx
    (cd "$REPO_ROOT" && pg_cargo pgrx install --release --pg-config "$PG_CONFIG")
}

# Everything started here is stopped by stop_services, which callers put in an EXIT trap.
SERVICE_DIR=""
SERVICE_PIDS=()
PG_DATA=""
EXTRA_PG_DATA=()
# The nodes of the cluster start_kafka_cluster starts, by node id - 1.
KAFKA_NODE_DIRS=()

make_service_dir() {
    if [[ -z "$SERVICE_DIR" ]]; then
        SERVICE_DIR="$(mktemp -d /tmp/kafka_fdw.XXXXXX)"
        chmod 755 "$SERVICE_DIR"
    fi
}

stop_services() {
    local data
    for data in "$PG_DATA" "${EXTRA_PG_DATA[@]}"; do
        if [[ -n "$data" && -f "$data/postmaster.pid" ]]; then
            as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
        fi
    done
    stop_kafka_cluster
    for pid in "${SERVICE_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVICE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVICE_PIDS=()
}

# Apache Kafka's broker runs from the jars of scripts/kafka/pom.xml (Maven Central), cached
# per version and content of the POM in KAFKA_JARS (a POM with another dependency gets a
# cache of its own); Maven's own cache (~/.m2) only saves downloads.
KAFKA_POM="$REPO_ROOT/scripts/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")"
KAFKA_JARS="$HOME/.cache/kafka_fdw/kafka-$KAFKA_VERSION-$(sha256sum "$KAFKA_POM" | cut -c1-12)"

install_kafka() {
    [[ -d "$KAFKA_JARS" ]] && return 0
    log "Downloading Apache Kafka $KAFKA_VERSION from Maven Central"
    rm -rf "$KAFKA_JARS.partial"
    mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$KAFKA_JARS.partial"
    # Renamed when complete, so an interrupted download is never taken for a cache.
    mv "$KAFKA_JARS.partial" "$KAFKA_JARS"
}

# Runs a class of Kafka's jars, with the test logging: "${KAFKA_JAVA[@]}" MAIN_CLASS ARGS…
# (a command, not a function, so that `… &` gives the JVM's own pid to signal).
KAFKA_JAVA=(java -Xmx512m -Dlog4j2.configurationFile="$REPO_ROOT/scripts/kafka/log4j2.xml" -cp "$KAFKA_JARS/*")

# A new cluster id: the tool's last line (the test logging writes INFO lines to standard
# output before it, which must not become part of the id).
kafka_cluster_id() {
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid | tail -n 1
}

# The settings every test node shares (append to its server.properties):
#   kafka_settings DIR REPLICAS
# Kafka's internal topics (consumer offsets, transaction state, share-group state) get
# REPLICAS replicas, and one partition each: their defaults (3 replicas, 50 partitions)
# never come up on one node, or come up slowly. Groups start without the 3 s wait. Test
# data carries timestamps from 2015 on, so nothing is deleted by age unless a topic asks
# for it (retention.ms), and retention and the log cleaner look every second instead of
# every 5 minutes and 15 s, so the tests of real topic shapes see them act; and the
# transaction coordinator aborts transactions past their timeout (a crashed producer's)
# within a second, not ten.
kafka_settings() {
    local dir="$1" replicas="$2" min_isr=$(($2 > 1 ? 2 : 1))
    cat <<PROPERTIES
log.dirs=$dir/data
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
log.retention.ms=-1
log.retention.check.interval.ms=1000
log.initial.task.delay.ms=0
log.cleaner.backoff.ms=500
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
PROPERTIES
}

# Launches the node configured in DIR/server.properties (formatted already) in the
# background: launch_kafka DIR. await_kafka DIR then waits until it serves.
launch_kafka() {
    local dir="$1"
    # The readiness line is counted, so that a restarted node is awaited afresh.
    grep -c 'Kafka Server started' "$dir/kafka.log" >"$dir/starts" 2>/dev/null || true
    "${KAFKA_JAVA[@]}" kafka.Kafka "$dir/server.properties" >>"$dir/kafka.log" 2>&1 &
    echo $! >"$dir/pid"
    SERVICE_PIDS+=($!)
}

# Kafka binds its ports before it can serve; the log says when it can.
await_kafka() {
    local dir="$1" pid started_before
    pid="$(<"$dir/pid")"
    started_before="$(<"$dir/starts")"
    for _ in $(seq 1200); do
        (($(grep -c 'Kafka Server started' "$dir/kafka.log") > started_before)) && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 40 "$dir/kafka.log" >&2
    echo "Kafka ($dir) did not start" >&2
    return 1
}

# Starts one Apache Kafka node (KRaft: broker and controller in one process) on
# loopback in a fresh directory (SERVICE_DIR/NAME, kafka by default); sets KAFKA_BROKERS:
#   start_kafka [NAME]
start_kafka() {
    make_service_dir
    local dir="$SERVICE_DIR/${1:-kafka}" port controller
    port="$(free_port)"
    controller="$(free_port)"
    mkdir -p "$dir"
    {
        cat <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
PROPERTIES
        kafka_settings "$dir" 1
    } >"$dir/server.properties"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$(kafka_cluster_id)" \
        -c "$dir/server.properties" >"$dir/format.log"
    launch_kafka "$dir"
    await_kafka "$dir"
    KAFKA_BROKERS="127.0.0.1:$port"
}

# Starts a cluster of N Kafka nodes, each broker and controller (one quorum of N voters),
# for failover tests: start_kafka_cluster N. Sets KAFKA_CLUSTER_BROKERS (every node's
# address, comma-separated) and KAFKA_NODE_DIRS (node i's directory at index i - 1, for
# stop_kafka_node and restart_kafka_node). Internal topics have 3 replicas (2 in sync).
start_kafka_cluster() {
    make_service_dir
    local nodes="$1" cluster_id voters="" node ports=() controllers=() addresses=()
    cluster_id="$(kafka_cluster_id)"
    for node in $(seq "$nodes"); do
        ports+=("$(free_port)")
        controllers+=("$(free_port)")
        addresses+=("127.0.0.1:${ports[-1]}")
        voters+="${voters:+,}$node@127.0.0.1:${controllers[-1]}"
    done
    for node in $(seq "$nodes"); do
        local dir="$SERVICE_DIR/kafka-node-$node"
        mkdir -p "$dir"
        {
            cat <<PROPERTIES
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:${ports[node - 1]},CONTROLLER://127.0.0.1:${controllers[node - 1]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[node - 1]}
# A crashed node's partitions get new leaders 3 s after its last heartbeat, not 9 s.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
PROPERTIES
            kafka_settings "$dir" "$((nodes < 3 ? nodes : 3))"
        } >"$dir/server.properties"
        "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log"
        KAFKA_NODE_DIRS+=("$dir")
    done
    # A node serves only once a majority of the quorum is up: launch all, then wait.
    for dir in "${KAFKA_NODE_DIRS[@]}"; do
        launch_kafka "$dir"
    done
    for dir in "${KAFKA_NODE_DIRS[@]}"; do
        await_kafka "$dir"
    done
    KAFKA_CLUSTER_BROKERS="$(IFS=,; echo "${addresses[*]}")"
}

# stop_kafka_node NODE SIGNAL: stops node NODE (1-based) of the cluster with SIGNAL
# (TERM: a controlled shutdown; KILL: a crash) and waits until it is gone.
stop_kafka_node() {
    local pid
    pid="$(<"${KAFKA_NODE_DIRS[$1 - 1]}/pid")"
    kill -"$2" "$pid" 2>/dev/null || true
    # Reaped here (by the shell that launched it), so that bash does not report the
    # killed job later.
    wait "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
    done
}

# Ends the cluster with SIGKILL: its data is thrown away, and SIGTERM would hang, since
# the last nodes' controlled shutdown waits for a controller quorum that is gone.
stop_kafka_cluster() {
    for node in $(seq "${#KAFKA_NODE_DIRS[@]}"); do
        stop_kafka_node "$node" KILL
    done
    KAFKA_NODE_DIRS=()
}

# restart_kafka_node NODE: starts a stopped node of the cluster again and waits until it serves.
restart_kafka_node() {
    launch_kafka "${KAFKA_NODE_DIRS[$1 - 1]}"
    await_kafka "${KAFKA_NODE_DIRS[$1 - 1]}"
}

# A Kafka node whose clients authenticate with SASL/SCRAM (SHA-256 and SHA-512), over
# TLS or not, and are authorized by ACLs (StandardAuthorizer); users NAME:PASSWORD are
# created at format time, with user admin a super user:
#   start_secure_kafka NAME:PASSWORD…
# Sets SECURE_BROKERS (SASL_SSL), SECURE_SASL_BROKERS (SASL_PLAINTEXT), SECURE_CA (PEM
# of the certificate clients must trust), UNTRUSTED_CA (PEM of an unrelated one) and
# SECURE_ADMIN_BROKERS: a plaintext listener for the test setup (topics, ACLs), whose
# principal, ANONYMOUS, is a super user because the node's broker and controller talk to
# each other as ANONYMOUS too.
start_secure_kafka() {
    make_service_dir
    local dir="$SERVICE_DIR/secure-kafka" plain sasl tls controller scram=() user listener mechanism
    plain="$(free_port)"
    sasl="$(free_port)"
    tls="$(free_port)"
    controller="$(free_port)"
    mkdir -p "$dir"
    # A self-signed certificate for 127.0.0.1 (clients check the address against it).
    keytool -genkeypair -keystore "$dir/keystore.p12" -storetype PKCS12 -storepass changeit \
        -alias broker -keyalg RSA -keysize 2048 -validity 2 -dname CN=127.0.0.1 \
        -ext SAN=IP:127.0.0.1,DNS:localhost 2>/dev/null
    keytool -exportcert -rfc -keystore "$dir/keystore.p12" -storepass changeit -alias broker \
        -file "$dir/ca.pem" 2>/dev/null
    {
        cat <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$plain,SASL_PLAINTEXT://127.0.0.1:$sasl,SASL_SSL://127.0.0.1:$tls,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$plain,SASL_PLAINTEXT://127.0.0.1:$sasl,SASL_SSL://127.0.0.1:$tls
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/keystore.p12
ssl.keystore.password=changeit
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
PROPERTIES
        for listener in sasl_plaintext sasl_ssl; do
            for mechanism in scram-sha-256 scram-sha-512; do
                echo "listener.name.$listener.$mechanism.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
            done
        done
        kafka_settings "$dir" 1
    } >"$dir/server.properties"
    for user in "$@"; do
        for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
            scram+=(--add-scram "$mechanism=[name=\"${user%%:*}\",password=\"${user#*:}\"]")
        done
    done
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$(kafka_cluster_id)" \
        -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log"
    launch_kafka "$dir"
    await_kafka "$dir"
    SECURE_ADMIN_BROKERS="127.0.0.1:$plain"
    SECURE_SASL_BROKERS="127.0.0.1:$sasl"
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

# HTTPS in front of the registry at KAFKA_REGISTRY_URL (http://127.0.0.1:PORT, and a
# path if it has one); exports KAFKA_TLS_REGISTRY_URL (the same path) and
# KAFKA_TLS_REGISTRY_CA (PEM file of the authority it trusts).
start_tls_registry() {
    local tls address="${KAFKA_REGISTRY_URL#http://127.0.0.1:}" dir
    tls="$(free_port)"
    dir="$(mktemp -d "$SERVICE_DIR/tls-registry.XXXXXX")"
    tls_front "$dir" "${address%%/*}" "$tls"
    KAFKA_TLS_REGISTRY_URL="https://127.0.0.1:$tls${address#"${address%%/*}"}"
    KAFKA_TLS_REGISTRY_CA="$dir/ca.pem"
    export KAFKA_TLS_REGISTRY_URL KAFKA_TLS_REGISTRY_CA
}

# Apicurio Registry, a second, independent implementation of the Confluent Schema
# Registry API, for the Schema Registry tests. 3.0.9 is the newest that runs on Java 17
# (3.3 needs Java 21). Fetched from Maven Central over HTTP: Maven itself cannot
# resolve the artifact, whose parent POM is not published there.
APICURIO_VERSION=3.0.9
APICURIO_DIR="$HOME/.cache/kafka_fdw/apicurio-registry-$APICURIO_VERSION"

install_apicurio() {
    [[ -d "$APICURIO_DIR" ]] && return 0
    log "Downloading Apicurio Registry $APICURIO_VERSION from Maven Central"
    rm -rf "$APICURIO_DIR.partial"
    mkdir -p "$APICURIO_DIR.partial"
    curl -sSf "https://repo.maven.apache.org/maven2/io/apicurio/apicurio-registry-app/$APICURIO_VERSION/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" |
        tar xz -C "$APICURIO_DIR.partial"
    mv "$APICURIO_DIR.partial" "$APICURIO_DIR"
}

# Starts Apicurio Registry with its in-memory storage (H2) on loopback; exports
# APICURIO_REGISTRY_URL, the base URL of its Confluent-compatible API.
start_apicurio() {
    make_service_dir
    local dir="$SERVICE_DIR/apicurio" port url
    port="$(free_port)"
    mkdir -p "$dir"
    url="http://127.0.0.1:$port/apis/ccompat/v7"
    (cd "$dir" && exec java -Xmx512m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
        -jar "$APICURIO_DIR/apicurio-registry-app-$APICURIO_VERSION-runner.jar" >"$dir/apicurio.log" 2>&1) &
    SERVICE_PIDS+=($!)
    for _ in $(seq 600); do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/subjects")" == 200 ]]; then
            APICURIO_REGISTRY_URL="$url"
            export APICURIO_REGISTRY_URL
            return 0
        fi
        sleep 0.1
    done
    tail -n 40 "$dir/apicurio.log" >&2
    echo "Apicurio Registry did not start" >&2
    return 1
}

# Creates a topic on the broker at KAFKA_BROKERS and waits until it can be used:
#   create_topic NAME PARTITIONS [kafka-tool create-topic options…, e.g. --config cleanup.policy=compact]
create_topic() {
    "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic "$1" --partitions "$2" "${@:3}" >/dev/null
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

# For a Debian root: puts a wrapper of each of its PostgreSQL's programs (psql, createdb,
# pg_isready, …) first in PATH, running it in the root. The wrappers are in PATH in the
# root too (tests' shell commands run there): there they run the program itself.
root_clients() {
    local bin="$SERVICE_DIR/pg-bin" program
    mkdir -p "$bin"
    for program in "$DEBIAN_ROOT$PG_BIN"/*; do
        program="${program##*/}"
        printf '#!/usr/bin/env bash\n[[ ! -e /.kafka_fdw-ready ]] || exec %q "$@"\nKAFKA_FDW_PG_VERSION=%q KAFKA_FDW_ROOTS=%q source %q\nin_root "$DEBIAN_ROOT" %q "$@"\n' \
            "$PG_BIN/$program" "$PG_VERSION" "$ROOTS_DIR" "$REPO_ROOT/scripts/lib.sh" "$PG_BIN/$program" >"$bin/$program"
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
    init_cluster "$PG_DATA"
    export PGPORT PGHOST="$SERVICE_DIR" PGUSER=postgres
    PGPORT="$(free_port)"
    pg_start
}

# A second throwaway cluster beside the first (e.g. to restore a dump into), started
# as the first is; prints its port. Stopped by stop_services.
#   port=$(start_extra_postgres NAME)
start_extra_postgres() {
    local data="$SERVICE_DIR/$1" port
    port="$(free_port)"
    init_cluster "$data"
    EXTRA_PG_DATA+=("$data")
    cluster_start "$data" "$port" "$SERVICE_DIR/$1.log"
    echo "$port"
}

init_cluster() { # init_cluster DATA_DIR
    pg_system chown postgres "$SERVICE_DIR"
    as_postgres "$PG_BIN/initdb" -D "$1" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >"$1.initdb.log"
}

# The scheduler works in database $SCHEDULER_DATABASE. Its runs are background workers,
# as are parallel queries' workers: max_worker_processes leaves room for both.
SCHEDULER_DATABASE=kafka_fdw_scheduler
cluster_start() { # cluster_start DATA_DIR PORT LOG
    as_postgres "$PG_BIN/pg_ctl" -D "$1" -w -l "$3" \
        -o "-p $2 -k $SERVICE_DIR -c listen_addresses='' -c fsync=off -c max_worker_processes=16 -c shared_preload_libraries=kafka_fdw -c kafka_fdw.scheduler_database=$SCHEDULER_DATABASE" \
        start >/dev/null
}

# Starts (again) the cluster made by start_postgres.
pg_start() {
    cluster_start "$PG_DATA" "$PGPORT" "$SERVICE_DIR/postgres.log"
}

pg_stop() {
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -m fast stop >/dev/null
}

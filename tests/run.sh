#!/usr/bin/env bash
# The whole test suite, unattended on a fresh machine, against each PostgreSQL version of
# KAFKA_FDW_PG_VERSIONS (default "15 17 18"; 15 is the machine's own, 17 and 18 run in
# Debian roots made by scripts/lib.sh), each in a run of its own with its own services:
#   1. cargo test         module layering (tests/layout.sh), then pure Rust (options,
#                         codecs, pools; Kafka code against an in-process librdkafka
#                         mock cluster): with the first version only, as the pure layers
#                         never use PostgreSQL
#   2. cargo pgrx test    the Rust tests that need a PostgreSQL backend
#   3. pg_regress         SQL regression files against a real broker (tansu) and a
#                         throwaway PostgreSQL cluster, then tests/scenarios.sh
# Installs what is missing first (Debian packages, cargo-pgrx 0.18.0, tansu 0.6.0, the
# Debian roots). Ends with each version's outcome and time; fails if any version failed.
# KAFKA_FDW_TEST_LAYERS=3 runs only the SQL layer, KAFKA_FDW_REGRESS_ONLY="avro …" only
# those regression files (for development; CI runs all).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

if [[ -z "${KAFKA_FDW_PG_VERSION:-}" ]]; then
    versions=(${KAFKA_FDW_PG_VERSIONS:-15 17 18})
    install_apt_packages
    # The Debian roots are made (downloads, mostly) while the versions before them run.
    mkdir -p "$ROOTS_DIR"
    declare -A making=()
    for version in "${versions[@]}"; do
        if [[ "$version" != 15 && -z "${making[$version]:-}" ]]; then
            KAFKA_FDW_PG_VERSION="$version" bash -c 'source "$0"; make_debian_root' "$REPO_ROOT/scripts/lib.sh" \
                >"$ROOTS_DIR/make-pg$version.log" 2>&1 &
            making[$version]=$!
        fi
    done
    layers="${KAFKA_FDW_TEST_LAYERS:-123}"
    failed=0
    outcomes=()
    for version in "${versions[@]}"; do
        started=$SECONDS
        if [[ -z "$layers" ]]; then
            continue
        elif [[ -n "${making[$version]:-}" ]] && ! wait "${making[$version]}"; then
            cat "$ROOTS_DIR/make-pg$version.log" >&2
            outcome="FAILED (no Debian root)"
            failed=1
        elif KAFKA_FDW_PG_VERSION="$version" KAFKA_FDW_TEST_LAYERS="$layers" bash "${BASH_SOURCE[0]}"; then
            outcome=passed
        else
            outcome=FAILED
            failed=1
        fi
        took=$((SECONDS - started))
        outcomes+=("PostgreSQL $version: $outcome (layers $layers) in $((took / 60)) min $((took % 60)) s")
        layers="${layers//1/}"
        making[$version]=""
    done
    log "Test matrix"
    printf '%s\n' "${outcomes[@]}" >&2
    exit "$failed"
fi

trap stop_services EXIT

setup_machine
make_service_dir

LAYERS="${KAFKA_FDW_TEST_LAYERS:-123}"

if [[ "$LAYERS" == *1* ]]; then
    log "Layer 1: module layering, cargo test (PostgreSQL $PG_VERSION)"
    bash "$REPO_ROOT/tests/layout.sh"
    (cd "$REPO_ROOT" && pg_cargo test --locked --workspace --no-default-features --features "kafka_fdw/pg$PG_VERSION")
fi

if [[ "$LAYERS" == *2* ]]; then
    log "Layer 2: cargo pgrx test (PostgreSQL $PG_VERSION)"
    mkdir -p "$SERVICE_DIR/pgrx-data"
    pg_system chown postgres "$SERVICE_DIR" "$SERVICE_DIR/pgrx-data"
    # Only the tests that need a backend (layer 1 ran the others), in the release profile
    # whose dependencies layer 3 builds anyway.
    (cd "$REPO_ROOT" && pg_cargo pgrx test "pg$PG_VERSION" in_db_tests --release --runas postgres --pgdata "$SERVICE_DIR/pgrx-data")
fi

[[ "$LAYERS" == *3* ]] || exit 0

log "Layer 3: SQL regression tests (PostgreSQL $PG_VERSION)"
# Installed after layer 2, which installs its own test build of the extension.
build_tool
install_extension
start_tansu
start_scratch_tansu
start_mock --topic regress_snappy:2
seq 1 1000 | awk '{ printf "%d,secret %d\n", $1, $1 }' >"$SERVICE_DIR/secure.csv"
start_secure_tansu alice wonderland secure_topic "$SERVICE_DIR/secure.csv"
# Two schema registries: one that wants credentials, one open (KAFKA_REGISTRY_URL), the
# open one also over HTTPS (KAFKA_TLS_REGISTRY_URL).
start_registry --user reader --password secret
KAFKA_AUTH_REGISTRY_URL="$KAFKA_REGISTRY_URL"
start_registry
start_tls_registry
export KAFKA_AUTH_REGISTRY_URL
start_postgres
source "$REPO_ROOT/tests/regress/load.sh"
export KAFKA_BROKERS="$TANSU_BROKERS" KAFKA_SCRATCH_BROKERS="$SCRATCH_BROKERS" KAFKA_MOCK_BROKERS="$MOCK_BROKERS" KAFKA_MOCK_CONTROL="$MOCK_CONTROL" KAFKA_TOOL
export KAFKA_SECURE_BROKERS="$SECURE_BROKERS" KAFKA_SECURE_CA="$SECURE_CA" KAFKA_UNTRUSTED_CA="$UNTRUSTED_CA"
export KAFKA_FDW_REPO="$REPO_ROOT"
schedule="$REPO_ROOT/tests/regress/schedule"
if [[ -n "${KAFKA_FDW_REGRESS_ONLY:-}" ]]; then
    # Development: `extension` and the named files only (e.g. "avro codecs"), no scenarios.
    schedule="$SERVICE_DIR/schedule"
    printf 'test: %s\n' extension $KAFKA_FDW_REGRESS_ONLY >"$schedule"
fi
if ! pg_system "$PG_REGRESS" --host="$PGHOST" --port="$PGPORT" --user=postgres \
    --inputdir="$REPO_ROOT/tests/regress" --outputdir="$SERVICE_DIR/regress" \
    --dbname=kafka_fdw_regress --schedule="$schedule"; then
    cat "$SERVICE_DIR/regress/regression.diffs" >&2 || true
    exit 1
fi
[[ -n "${KAFKA_FDW_REGRESS_ONLY:-}" ]] || source "$REPO_ROOT/tests/scenarios.sh"
log "All tests passed (PostgreSQL $PG_VERSION)"

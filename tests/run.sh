#!/usr/bin/env bash
# The whole test suite, unattended on a fresh machine, against each PostgreSQL version of
# KAFKA_FDW_PG_VERSIONS (default "15 17 18"; 15 is the machine's own, 17 and 18 run in
# Debian roots made by scripts/lib.sh), each in a run of its own with its own services:
#   1. cargo test         module layering (tests/layout.sh), then pure Rust (options,
#                         codecs, pools; Kafka code against an in-process librdkafka
#                         mock cluster): with the first version only, as the pure layers
#                         never use PostgreSQL
#   2. cargo pgrx test    the Rust tests that need a PostgreSQL backend
#   3. pg_regress         SQL regression files against Apache Kafka (and librdkafka's
#                         mock cluster for injected faults) and a throwaway PostgreSQL
#                         cluster; on the first and the last version also
#                         tests/scenarios.sh (KAFKA_FDW_FULL_VERSIONS, default "15 18":
#                         the whole matrix would not fit CI's time), and on the first
#                         also the Schema Registry files against Apicurio Registry and
#                         the scenarios of brokers, registry and librdkafka, which do not
#                         depend on PostgreSQL's version
# Installs what is missing first (Debian packages, Apache Kafka's jars, cargo-pgrx 0.18.0,
# the Debian roots). Ends with each version's outcome and time; fails if any failed.
# KAFKA_FDW_TEST_LAYERS=3 runs only the SQL layer, KAFKA_FDW_REGRESS_ONLY="avro …" only
# those regression files ("apicurio": the pass against Apicurio Registry) and no
# scenarios (for development; CI runs all).
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
    full_versions=" ${KAFKA_FDW_FULL_VERSIONS:-15 18} "
    # What KAFKA_FDW_REGRESS_ONLY a version's run gets: as asked, else all the regression
    # files and no more on a version that is not one of full_versions.
    regress_only() {
        if [[ -n "${KAFKA_FDW_REGRESS_ONLY:-}" || "$full_versions" == *" $1 "* ]]; then
            echo "${KAFKA_FDW_REGRESS_ONLY:-}"
        else
            sed -n '/^test: extension$/d; s/^test: //p' "$REPO_ROOT/tests/regress/schedule" | tr '\n' ' '
        fi
    }
    # The Apicurio pass and the scenarios of brokers, registry and librdkafka: with the
    # first version only (tests/scenarios.sh).
    broker_tests="${KAFKA_FDW_BROKER_TESTS:-1}"
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
        elif KAFKA_FDW_PG_VERSION="$version" KAFKA_FDW_TEST_LAYERS="$layers" KAFKA_FDW_REGRESS_ONLY="$(regress_only "$version")" \
            KAFKA_FDW_BROKER_TESTS="$broker_tests" bash "${BASH_SOURCE[0]}"; then
            outcome=passed
        else
            outcome=FAILED
            failed=1
        fi
        broker_tests=0
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
    await_cargo_pgrx
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
start_kafka
start_mock
# Kafka users: admin (a super user), alice (security.sql) and those of acls.sql, each
# lacking one ACL (tests/regress/load.sh grants the rest).
secure_users=(admin:admin-secret alice:wonderland)
for user in no_describe no_read no_write no_idempotent no_txn_id; do
    secure_users+=("$user:$user-secret")
done
start_secure_kafka "${secure_users[@]}"
# Two schema registries: one that wants credentials, one open (KAFKA_REGISTRY_URL), the
# open one also over HTTPS (KAFKA_TLS_REGISTRY_URL).
start_registry --user reader --password secret
KAFKA_AUTH_REGISTRY_URL="$KAFKA_REGISTRY_URL"
start_registry
start_tls_registry
export KAFKA_AUTH_REGISTRY_URL
start_postgres
source "$REPO_ROOT/tests/regress/load.sh"
export KAFKA_BROKERS KAFKA_MOCK_BROKERS="$MOCK_BROKERS" KAFKA_MOCK_CONTROL="$MOCK_CONTROL" KAFKA_TOOL
export KAFKA_SECURE_BROKERS="$SECURE_BROKERS" KAFKA_SECURE_SASL_BROKERS="$SECURE_SASL_BROKERS" KAFKA_SECURE_ADMIN_BROKERS="$SECURE_ADMIN_BROKERS" KAFKA_SECURE_CA="$SECURE_CA" KAFKA_UNTRUSTED_CA="$UNTRUSTED_CA"
export KAFKA_FDW_REPO="$REPO_ROOT"
schedule="$REPO_ROOT/tests/regress/schedule"
if [[ -n "${KAFKA_FDW_REGRESS_ONLY:-}" ]]; then
    # Development: `extension` and the named files only (e.g. "avro codecs"), no scenarios.
    schedule="$SERVICE_DIR/schedule"
    printf 'test: %s\n' extension ${KAFKA_FDW_REGRESS_ONLY//apicurio/} >"$schedule"
fi
regress() { # regress INPUTDIR NAME SCHEDULE: pg_regress of INPUTDIR's sql/ and expected/
    if ! pg_system "$PG_REGRESS" --host="$PGHOST" --port="$PGPORT" --user=postgres \
        --inputdir="$1" --outputdir="$SERVICE_DIR/$2" --dbname="kafka_fdw_$2" --schedule="$3"; then
        cat "$SERVICE_DIR/$2/regression.diffs" >&2 || true
        exit 1
    fi
}
regress "$REPO_ROOT/tests/regress" regress "$schedule"
if [[ ( -z "${KAFKA_FDW_REGRESS_ONLY:-}" && "${KAFKA_FDW_BROKER_TESTS:-1}" == 1 ) || "${KAFKA_FDW_REGRESS_ONLY:-}" == *apicurio* ]]; then
    # The Schema Registry files again, against Apicurio Registry instead of kafka-tool's
    # registry (the one that wants credentials stays: Apicurio's needs an OpenID
    # provider), on a Kafka node of their own loaded the same way. Their expected
    # outputs (tests/regress/apicurio/expected) differ from the first pass's only where
    # the two registries answer differently.
    log "Layer 3: the Schema Registry files against Apicurio Registry"
    install_apicurio
    start_apicurio
    main_brokers="$KAFKA_BROKERS" main_registry="$KAFKA_REGISTRY_URL" main_registry_log="$KAFKA_REGISTRY_LOG"
    KAFKA_REGISTRY_URL="$APICURIO_REGISTRY_URL"
    # kafka-tool's registry logs each request; Apicurio's requests are not counted.
    KAFKA_REGISTRY_LOG=""
    start_tls_registry
    start_kafka kafka-apicurio
    source "$REPO_ROOT/tests/regress/load_registry.sh"
    regress "$REPO_ROOT/tests/regress/apicurio" apicurio "$REPO_ROOT/tests/regress/apicurio/schedule"
    # The scenarios use kafka-tool's registry (requests counted, schemas of any size).
    KAFKA_BROKERS="$main_brokers" KAFKA_REGISTRY_URL="$main_registry" KAFKA_REGISTRY_LOG="$main_registry_log"
fi
[[ -n "${KAFKA_FDW_REGRESS_ONLY:-}" ]] || source "$REPO_ROOT/tests/scenarios.sh"
log "All tests passed (PostgreSQL $PG_VERSION)"

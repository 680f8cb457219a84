#!/usr/bin/env bash
# Runs every benchmark pair on this machine: kafka_fdw against the raw kafka-tool loops
# (same librdkafka, same broker) and COPY, and prints a table of medians and ratios.
# The main broker is librdkafka's mock cluster hosted by kafka-tool (in memory, so the
# table shows our overhead rather than the broker's); pair 1 also runs once on Apache Kafka,
# and pair 10 (ANALYZE) runs on both.
# Sizes: BENCH_MESSAGES (1000000), BENCH_RSS_MESSAGES (5000000), BENCH_RUNS (5); others
# in bench.py. The whole bench takes about 10 minutes once everything is built.
# BENCH_PAIRS=5,11 runs only those pairs. The table is also drawn as docs/benchmarks.svg.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
trap stop_services EXIT

setup_machine
python3 -c 'import psycopg' 2>/dev/null || pip install --quiet 'psycopg[binary]'
build_tool
install_extension
start_mock
start_kafka
start_registry
start_postgres
createdb bench
createdb "$SCHEDULER_DATABASE"
export KAFKA_TOOL MOCK_BROKERS MOCK_CONTROL KAFKA_BROKERS SCHEDULER_DATABASE BENCH_DIR="$SERVICE_DIR"
python3 "$REPO_ROOT/bench/bench.py"

#!/usr/bin/env bash
# Sets everything up on a fresh machine and runs the reference walkthrough end to end
# against Apache Kafka, printing each statement and its result.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_services EXIT

setup_machine
build_tool
install_extension
start_kafka
# The demo database is the one the import scheduler works in.
SCHEDULER_DATABASE=demo
start_postgres

log "Loading topic contrib_regress_csv: 4 partitions, 4400 rows"
create_topic contrib_regress_csv 4
rows() { # rows FIRST LAST: CSV lines some_int,some_text,some_date,some_time
    seq "$1" "$2" | awk '{ printf "%d,text %d,2024-%02d-%02d,2024-01-01 %02d:%02d:%02d\n", $1, $1, $1 % 12 + 1, $1 % 28 + 1, $1 % 24, $1 % 60, ($1 * 7) % 60 }'
}
rows 1 4400 >"$SERVICE_DIR/rows.csv"
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic contrib_regress_csv --round-robin --file "$SERVICE_DIR/rows.csv"
rows 4401 4500 >"$SERVICE_DIR/more_rows.csv"
rows 4501 4600 >"$SERVICE_DIR/last_rows.csv"
rows 4601 4700 >"$SERVICE_DIR/final_rows.csv"

log "The reference walkthrough"
export KAFKA_BROKERS="$KAFKA_BROKERS" KAFKA_TOOL DEMO_MORE_ROWS="$SERVICE_DIR/more_rows.csv"
export DEMO_OUTPUT="$SERVICE_DIR/long_result.txt" DEMO_LAST_ROWS="$SERVICE_DIR/last_rows.csv"
export DEMO_FINAL_ROWS="$SERVICE_DIR/final_rows.csv"
createdb demo
cd "$REPO_ROOT" && psql -X --echo-queries -d demo -f demo/walkthrough.sql

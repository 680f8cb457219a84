# Scenario tests that restart or crash the server, which pg_regress cannot do. Sourced by
# tests/run.sh with the broker and PostgreSQL up (PGHOST/PGPORT set, the scheduler
# configured for database kafka_fdw_scheduler).

scenario_fail() {
    echo "SCENARIO FAILED: $*" >&2
    exit 1
}

wait_for_server() {
    for _ in $(seq 300); do
        pg_isready -q && psql -X -q -d "$1" -c 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    scenario_fail "the server did not come back"
}

setup_import_database() { # setup_import_database DB TOPIC
    createdb "$1"
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" <<SQL
CREATE EXTENSION kafka_fdw;
CREATE SERVER s FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$TANSU_BROKERS');
CREATE USER MAPPING FOR PUBLIC SERVER s;
CREATE FOREIGN TABLE source (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER s OPTIONS (topic '$2');
CREATE TABLE target (part int, offs bigint, n int, t text);
SQL
}

# Rows of the target, distinct messages in it, and messages in the topic.
import_counts() {
    psql -X -A -t -d "$1" -c "SELECT (SELECT count(*) FROM target) || ' ' || (SELECT count(DISTINCT (part, offs)) FROM target) || ' ' || (SELECT count(*) FROM source)"
}

rows() { # rows FIRST LAST
    seq "$1" "$2" | awk '{ printf "%d,message %d\n", $1, $1 }'
}

log "Scenario: kill -9 the backend of a running import, 20 times"
create_topic crash_source 4
rows 1 60000 >"$SERVICE_DIR/crash.csv"
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic crash_source --round-robin --file "$SERVICE_DIR/crash.csv" >/dev/null
setup_import_database kafka_fdw_crash crash_source
for _ in $(seq 200); do
    echo "SELECT kafka_fdw.import('source', 'target', max_messages => 1500);"
done >"$SERVICE_DIR/imports.sql"
kills=0
while ((kills < 20)); do
    PGAPPNAME=crash_victim psql -X -q -d kafka_fdw_crash -f "$SERVICE_DIR/imports.sql" >/dev/null 2>&1 &
    importer=$!
    sleep "0.$((RANDOM % 4 + 1))$((RANDOM % 10))"
    victim=$(psql -X -A -t -d kafka_fdw_crash -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash_victim' AND state = 'active'" 2>/dev/null | head -n 1)
    if [[ -n "$victim" ]]; then
        kill -9 "$victim"
        kills=$((kills + 1))
    fi
    wait "$importer" 2>/dev/null || true
    wait_for_server kafka_fdw_crash
done
read -r before_rows before_distinct in_topic <<<"$(import_counts kafka_fdw_crash)"
psql -X -q -d kafka_fdw_crash -c "SELECT kafka_fdw.import('source', 'target')" >/dev/null
read -r imported distinct in_topic <<<"$(import_counts kafka_fdw_crash)"
echo "killed $kills times; before the final run: $before_rows rows ($before_distinct distinct); after: $imported rows, $distinct distinct messages, $in_topic in the topic"
[[ "$before_rows" == "$before_distinct" ]] || scenario_fail "duplicates after crashes"
[[ "$imported" == "$distinct" && "$imported" == "$in_topic" ]] || scenario_fail "target differs from the topic: $imported rows, $distinct distinct, $in_topic in topic"

log "Scenario: a 1-second scheduled import keeps up, across a server restart"
create_topic sched_source 2
rows 1 1000 >"$SERVICE_DIR/sched1.csv"
rows 1001 2000 >"$SERVICE_DIR/sched2.csv"
rows 2001 3000 >"$SERVICE_DIR/sched3.csv"
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic sched_source --round-robin --file "$SERVICE_DIR/sched1.csv" >/dev/null
setup_import_database kafka_fdw_scheduler sched_source
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.start_import('source', 'target')" >/dev/null

converge() { # converge EXPECTED: wait until the target holds EXPECTED distinct messages
    local started=$SECONDS
    while ((SECONDS - started < 20)); do
        read -r imported distinct in_topic <<<"$(import_counts kafka_fdw_scheduler 2>/dev/null)"
        [[ "$imported" == "$1" && "$distinct" == "$1" ]] && { echo "converged to $1 messages in $((SECONDS - started)) s"; return 0; }
        sleep 0.2
    done
    psql -X -d kafka_fdw_scheduler -c "SELECT * FROM kafka_fdw.import_jobs_status" >&2
    scenario_fail "the scheduled import did not reach $1 messages (has $imported rows, $distinct distinct)"
}
# The scheduler worker retries its database every 5 s until it exists.
converge 1000
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic sched_source --round-robin --file "$SERVICE_DIR/sched2.csv" >/dev/null
converge 2000
# Messages arrive while the server is down; the job resumes from its stored offsets.
pg_stop
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic sched_source --round-robin --file "$SERVICE_DIR/sched3.csv" >/dev/null
pg_start
wait_for_server kafka_fdw_scheduler
converge 3000
psql -X -A -t -d kafka_fdw_scheduler -c "SELECT state, last_error IS NULL FROM kafka_fdw.import_jobs_status"

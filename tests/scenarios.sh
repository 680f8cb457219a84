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
# The scheduler worker retries its database every second until it exists.
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

log "Scenario: the scheduler is terminated, comes back, and its job runs again"
scheduler_pid() {
    psql -X -A -t -d kafka_fdw_scheduler -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'kafka_fdw import scheduler'"
}
old_pid=$(scheduler_pid)
[[ -n "$old_pid" ]] || scenario_fail "no scheduler running"
rows 3001 4000 >"$SERVICE_DIR/sched4.csv"
psql -X -q -A -t -d kafka_fdw_scheduler -c "SELECT pg_terminate_backend($old_pid)" >/dev/null
terminated=$SECONDS
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic sched_source --round-robin --file "$SERVICE_DIR/sched4.csv" >/dev/null
converge 4000
new_pid=$(scheduler_pid)
echo "scheduler $old_pid terminated; running again as $new_pid, job caught up $((SECONDS - terminated)) s after the termination"
[[ -n "$new_pid" && "$new_pid" != "$old_pid" ]] || scenario_fail "the scheduler did not come back (pid '$new_pid')"
grep -q "kafka_fdw import scheduler started" "$SERVICE_DIR/postgres.log" || scenario_fail "the scheduler's start is not logged"

log "Scenario: cancel and statement_timeout end a wait on a dead broker within 1 s"
createdb kafka_fdw_robust
"$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" create-topic cancel_topic 2 >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_robust <<SQL
CREATE EXTENSION kafka_fdw;
-- Without cancellation these would wait a minute.
CREATE SERVER dead FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$MOCK_BROKERS', timeout_ms '60000');
CREATE USER MAPPING FOR PUBLIC SERVER dead;
CREATE FOREIGN TABLE waits (n int, t text) SERVER dead OPTIONS (topic 'cancel_topic');
SQL
"$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" broker-down 1 >/dev/null

now() { date +%s%N; }
elapsed_ms() { echo $((($(now) - $1) / 1000000)); }

cancel_after_wait() { # cancel_after_wait SQL: runs SQL, cancels it once it waits; prints ms from cancel to end
    PGAPPNAME=cancel_victim psql -X -d kafka_fdw_robust -c "$1" >"$SERVICE_DIR/cancel.out" 2>&1 &
    local victim_psql=$! pid="" started
    for _ in $(seq 100); do
        pid=$(psql -X -A -t -d kafka_fdw_robust -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'cancel_victim' AND state = 'active'")
        [[ -n "$pid" ]] && break
        sleep 0.05
    done
    [[ -n "$pid" ]] || scenario_fail "the query to cancel did not start"
    sleep 0.5
    started=$(now)
    psql -X -q -A -t -d kafka_fdw_robust -c "SELECT pg_cancel_backend($pid)" >/dev/null
    wait "$victim_psql" || true
    CANCEL_MS=$(elapsed_ms "$started")
    grep -q "canceling statement due to user request" "$SERVICE_DIR/cancel.out" || scenario_fail "not cancelled: $(cat "$SERVICE_DIR/cancel.out")"
}
cancel_after_wait "SELECT count(*) FROM waits"
echo "pg_cancel_backend of a scan waiting on a dead broker: ended ${CANCEL_MS} ms after the cancel"
((CANCEL_MS < 1000)) || scenario_fail "cancel took ${CANCEL_MS} ms"
cancel_after_wait "INSERT INTO waits VALUES (1, 'never delivered')"
echo "pg_cancel_backend of an INSERT waiting for delivery: ended ${CANCEL_MS} ms after the cancel"
((CANCEL_MS < 1000)) || scenario_fail "cancel took ${CANCEL_MS} ms"

for statement in "SELECT count(*) FROM waits" "INSERT INTO waits VALUES (1, 'never delivered')"; do
    started=$(now)
    psql -X -d kafka_fdw_robust -c "SET statement_timeout = '500ms'" -c "$statement" >"$SERVICE_DIR/timeout.out" 2>&1 || true
    took=$(elapsed_ms "$started")
    grep -q "canceling statement due to statement timeout" "$SERVICE_DIR/timeout.out" || scenario_fail "no timeout: $(cat "$SERVICE_DIR/timeout.out")"
    echo "statement_timeout = 500ms on \"$statement\": psql ended after ${took} ms"
    ((took < 1000)) || scenario_fail "statement_timeout took ${took} ms"
done
"$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" broker-up 1 >/dev/null

log "Scenario: 1000 failing queries leave the backend's threads and file descriptors flat"
create_topic leak_bad 1
printf '1,fine\nnot a number,bad\n' >"$SERVICE_DIR/bad.csv"
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic leak_bad --partition 0 --file "$SERVICE_DIR/bad.csv" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_robust <<SQL
CREATE SERVER nowhere FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '127.0.0.1:$(free_port)', timeout_ms '20');
CREATE USER MAPPING FOR PUBLIC SERVER nowhere;
CREATE FOREIGN TABLE unreachable (n int, t text) SERVER nowhere OPTIONS (topic 'leak_bad');
CREATE SERVER tansu FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$TANSU_BROKERS');
CREATE USER MAPPING FOR PUBLIC SERVER tansu;
CREATE FOREIGN TABLE bad_messages (n int, t text) SERVER tansu OPTIONS (topic 'leak_bad');
SQL
resources="SELECT (SELECT count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/task')) || ' ' || (SELECT count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/fd')) AS resources"
{
    # Warm up: the pools hold one client per server afterwards.
    for _ in $(seq 5); do
        echo "SELECT count(*) FROM unreachable;"
        echo "SELECT sum(n) FROM bad_messages;"
    done
    echo "$resources \\g $SERVICE_DIR/before.txt"
    for _ in $(seq 500); do
        echo "SELECT count(*) FROM unreachable;"
        echo "SELECT sum(n) FROM bad_messages;"
    done
    echo "$resources \\g $SERVICE_DIR/after.txt"
} >"$SERVICE_DIR/failing.sql"
psql -X -q -A -t -d kafka_fdw_robust -f "$SERVICE_DIR/failing.sql" 2>"$SERVICE_DIR/failing.err" >/dev/null
errors=$(grep -c "^psql.*ERROR" "$SERVICE_DIR/failing.err")
read -r threads_before fds_before <"$SERVICE_DIR/before.txt"
read -r threads_after fds_after <"$SERVICE_DIR/after.txt"
echo "$errors failing queries; threads $threads_before -> $threads_after, open files $fds_before -> $fds_after"
((errors == 1010)) || scenario_fail "expected 1010 errors, got $errors"
((threads_after <= threads_before && fds_after <= fds_before)) || scenario_fail "threads or file descriptors grew"

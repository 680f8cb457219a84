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
kill_imports() { # kill_imports DB SCRIPT: kill -9 the backend running SCRIPT's imports, 20 times
    kills=0
    while ((kills < 20)); do
        PGAPPNAME=crash_victim psql -X -q -d "$1" -f "$2" >/dev/null 2>&1 &
        importer=$!
        # 0 to 2 s: before, during or after the first import of the session commits.
        sleep "$((RANDOM % 2)).$((RANDOM % 10))$((RANDOM % 10))"
        victim=$(psql -X -A -t -d "$1" -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash_victim' AND state = 'active'" 2>/dev/null | head -n 1)
        if [[ -n "$victim" ]]; then
            kill -9 "$victim"
            kills=$((kills + 1))
        fi
        wait "$importer" 2>/dev/null || true
        wait_for_server "$1"
    done
}
kill_imports kafka_fdw_crash "$SERVICE_DIR/imports.sql"
read -r before_rows before_distinct in_topic <<<"$(import_counts kafka_fdw_crash)"
psql -X -q -d kafka_fdw_crash -c "SELECT kafka_fdw.import('source', 'target')" >/dev/null
read -r imported distinct in_topic <<<"$(import_counts kafka_fdw_crash)"
echo "killed $kills times; before the final run: $before_rows rows ($before_distinct distinct); after: $imported rows, $distinct distinct messages, $in_topic in the topic"
[[ "$before_rows" == "$before_distinct" ]] || scenario_fail "duplicates after crashes"
[[ "$imported" == "$distinct" && "$imported" == "$in_topic" ]] || scenario_fail "target differs from the topic: $imported rows, $distinct distinct, $in_topic in topic"

log "Scenario: kill -9 the backend of a running upsert import, 20 times"
# 60000 keyed messages over 5000 keys, every 9th a tombstone; keys stay in their partition.
keyed_rows() { # keyed_rows FIRST LAST KEYS: "key|n,message n", or "key|DELETE" (a tombstone) for every 9th
    seq "$1" "$2" | awk -v keys="$3" '{ k = ($1 * 7919) % keys; if ($1 % 9 == 0) printf "%d|DELETE\n", k; else printf "%d|%d,message %d\n", k, $1, $1 }'
}
produce_keyed() { # produce_keyed TOPIC FILE
    "$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic "$1" --key-delimiter '|' --tombstone DELETE --file "$2" >/dev/null
}
setup_upsert_tables() { # setup_upsert_tables DB TOPIC: source, target, and the reference (last value per key)
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" <<SQL
CREATE FOREIGN TABLE keyed_source (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'),
                                   id text OPTIONS (key 'true'), n int, t text)
SERVER s OPTIONS (topic '$2');
CREATE TABLE keyed_target (id int PRIMARY KEY, n int, t text);
CREATE VIEW keyed_reference AS
SELECT id::int, n, t FROM (SELECT id, n, t, rank() OVER (PARTITION BY id ORDER BY offs DESC) AS newest FROM keyed_source) m
WHERE newest = 1 AND (n IS NOT NULL OR t IS NOT NULL);
SQL
}
# Rows of the target, reference rows missing from it, and rows it has beyond them.
upsert_differences() {
    psql -X -A -t -F ' ' -d "$1" -c "SELECT (SELECT count(*) FROM keyed_target), (SELECT count(*) FROM (SELECT * FROM keyed_reference EXCEPT SELECT * FROM keyed_target) d), (SELECT count(*) FROM (SELECT * FROM keyed_target EXCEPT SELECT * FROM keyed_reference) d)"
}
create_topic crash_upsert 4
keyed_rows 1 60000 5000 >"$SERVICE_DIR/crash_upsert.txt"
produce_keyed crash_upsert "$SERVICE_DIR/crash_upsert.txt"
createdb kafka_fdw_crash_upsert
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_crash_upsert <<SQL
CREATE EXTENSION kafka_fdw;
CREATE SERVER s FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$TANSU_BROKERS');
CREATE USER MAPPING FOR PUBLIC SERVER s;
SQL
setup_upsert_tables kafka_fdw_crash_upsert crash_upsert
for _ in $(seq 200); do
    echo "SELECT kafka_fdw.import('keyed_source', 'keyed_target', max_messages => 1500, mode => 'upsert');"
done >"$SERVICE_DIR/upserts.sql"
kill_imports kafka_fdw_crash_upsert "$SERVICE_DIR/upserts.sql"
read -r before_rows _ <<<"$(upsert_differences kafka_fdw_crash_upsert)"
psql -X -q -d kafka_fdw_crash_upsert -c "SELECT kafka_fdw.import('keyed_source', 'keyed_target', mode => 'upsert')" >/dev/null
read -r rows missing extra <<<"$(upsert_differences kafka_fdw_crash_upsert)"
echo "killed $kills times; before the final run: $before_rows rows; after: $rows rows, $missing missing and $extra extra against the last value per key"
[[ "$missing" == 0 && "$extra" == 0 && "$rows" -gt 0 ]] || scenario_fail "the upserted target differs from the topic's last values: $rows rows, $missing missing, $extra extra"

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

log "Scenario: a 1-second upsert job keeps a table equal to the topic's last values while keys change and go"
create_topic sched_upsert 2
setup_upsert_tables kafka_fdw_scheduler sched_upsert
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.start_import('keyed_source', 'keyed_target', mode => 'upsert')" >/dev/null
upsert_converge() { # upsert_converge: wait until the target equals the reference, the job's lag 0
    local started=$SECONDS rows missing extra lag
    while ((SECONDS - started < 20)); do
        read -r rows missing extra <<<"$(upsert_differences kafka_fdw_scheduler 2>/dev/null)"
        lag=$(psql -X -A -t -d kafka_fdw_scheduler -c "SELECT lag FROM kafka_fdw.import_jobs_status WHERE target = 'keyed_target'::regclass" 2>/dev/null)
        if [[ "$missing" == 0 && "$extra" == 0 && "$lag" == 0 ]]; then
            echo "the table equals the last value of each key ($rows rows) after $((SECONDS - started)) s"
            return 0
        fi
        sleep 0.2
    done
    psql -X -d kafka_fdw_scheduler -c "SELECT * FROM kafka_fdw.import_jobs_status" >&2
    scenario_fail "the upsert job did not make the table equal the topic ($rows rows, $missing missing, $extra extra, lag $lag)"
}
# Round 1 creates keys; later rounds update most of them and delete every 9th message's key.
for round in 1 2 3; do
    keyed_rows "$((round * 10000 + 1))" "$((round * 10000 + 2000))" 500 >"$SERVICE_DIR/sched_upsert_$round.txt"
    produce_keyed sched_upsert "$SERVICE_DIR/sched_upsert_$round.txt"
    upsert_converge
done
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.stop_import('keyed_source', 'keyed_target')" >/dev/null

log "Scenario: a scheduled SQL task runs the reference page's import_kafka_data every second, across a scheduler crash"
create_topic task_source 2
rows 1 1000 >"$SERVICE_DIR/task1.csv"
rows 1001 2000 >"$SERVICE_DIR/task2.csv"
rows 2001 3000 >"$SERVICE_DIR/task3.csv"
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic task_source --round-robin --file "$SERVICE_DIR/task1.csv" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_scheduler <<SQL
\i $REPO_ROOT/demo/import_kafka_data.sql
CREATE FOREIGN TABLE kafka_task (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER s OPTIONS (topic 'task_source');
CREATE TABLE dest_task (n int, t text);
SELECT kafka_fdw.schedule('import_kafka_data', '1 seconds', \$\$SELECT import_kafka_data('kafka_task', 'dest_task', ARRAY['n', 't']);\$\$);
SQL
# Rows of the table, distinct messages in it, messages in the topic, and topic rows missing from the table.
task_counts() {
    psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT (SELECT count(*) FROM dest_task), (SELECT count(DISTINCT n) FROM dest_task), (SELECT count(*) FROM kafka_task), (SELECT count(*) FROM (SELECT n, t FROM kafka_task EXCEPT ALL SELECT * FROM dest_task) d)"
}
task_converge() { # task_converge EXPECTED: wait until the table equals the topic of EXPECTED messages
    local started=$SECONDS rows distinct in_topic missing
    while ((SECONDS - started < 20)); do
        read -r rows distinct in_topic missing <<<"$(task_counts 2>/dev/null)"
        if [[ "$rows" == "$1" && "$distinct" == "$1" && "$in_topic" == "$1" && "$missing" == 0 ]]; then
            echo "the table equals the topic ($1 messages) after $((SECONDS - started)) s"
            return 0
        fi
        sleep 0.2
    done
    psql -X -d kafka_fdw_scheduler -c "SELECT * FROM kafka_fdw.scheduled_tasks" -c "SELECT * FROM kafka_fdw.task_run_details ORDER BY runid DESC LIMIT 5" >&2
    scenario_fail "the scheduled task did not make the table equal the topic of $1 messages ($rows rows, $distinct distinct, $in_topic in topic, $missing missing)"
}
task_converge 1000
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic task_source --round-robin --file "$SERVICE_DIR/task2.csv" >/dev/null
task_converge 2000
# A task that outlasts its 1-second interval never overlaps itself; the scheduler is
# killed (kill -9: the server restarts) in the middle of one of its runs, which is then
# recorded as failed. (pg_terminate_backend lets the run finish: the worker stops
# between runs.)
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.schedule('sleeper', '1 seconds', 'SELECT pg_sleep(2)')" >/dev/null
old_pid=""
for _ in $(seq 100); do
    running=$(psql -X -A -t -d kafka_fdw_scheduler -c "SELECT runid FROM kafka_fdw.task_run_details WHERE task = 'sleeper' AND status = 'running'")
    [[ -n "$running" ]] && { old_pid=$(scheduler_pid); break; }
    sleep 0.1
done
[[ -n "$old_pid" ]] || scenario_fail "the sleeper task never ran"
kill -9 "$old_pid"
wait_for_server kafka_fdw_scheduler
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic task_source --round-robin --file "$SERVICE_DIR/task3.csv" >/dev/null
task_converge 3000
read -r interrupted_status interrupted_message <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT status, return_message FROM kafka_fdw.task_run_details WHERE runid = $running")"
echo "run $running of the sleeper, cut short by kill -9 of the scheduler: $interrupted_status ($interrupted_message)"
[[ "$interrupted_status" == failed && "$interrupted_message" == "the scheduler stopped during this run"* ]] || scenario_fail "the interrupted run is $interrupted_status: $interrupted_message"
# Let the sleeper run twice more after the restart, then check the history.
for _ in $(seq 100); do
    later=$(psql -X -A -t -d kafka_fdw_scheduler -c "SELECT count(*) FROM kafka_fdw.task_run_details WHERE task = 'sleeper' AND runid > $running AND status = 'succeeded'")
    ((later >= 2)) && break
    sleep 0.1
done
((later >= 2)) || scenario_fail "the sleeper did not run again after the restart"
read -r overlaps sleeper_runs import_runs import_failed period <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler <<'SQL'
SELECT (SELECT count(*) FROM kafka_fdw.task_run_details a JOIN kafka_fdw.task_run_details b
        ON a.task = b.task AND a.runid < b.runid AND b.start_time < a.end_time),
       (SELECT count(*) FROM kafka_fdw.task_run_details WHERE task = 'sleeper'),
       count(*), count(*) FILTER (WHERE status = 'failed' AND return_message NOT LIKE 'the scheduler stopped%'),
       round(extract(epoch FROM max(start_time) - min(start_time))::numeric / greatest(count(*) - 1, 1), 2)
FROM kafka_fdw.task_run_details WHERE task = 'import_kafka_data';
SQL
)"
echo "import_kafka_data: $import_runs runs, one every $period s on average (the 2 s sleeper in between), $import_failed failed; sleeper: $sleeper_runs runs, $overlaps overlapping runs"
((overlaps == 0)) || scenario_fail "$overlaps runs overlapped a run of the same task"
((import_failed == 0)) || scenario_fail "$import_failed runs of import_kafka_data failed"
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.unschedule('sleeper'), kafka_fdw.unschedule('import_kafka_data')" >/dev/null

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

log "Scenario: queries cancelled while a Schema Registry request waits leave no thread behind"
# A registry that answers each request 5 s late, one at a time: every query below is
# cancelled (statement_timeout) while its request waits.
open_registry_url=$KAFKA_REGISTRY_URL open_registry_log=$KAFKA_REGISTRY_LOG
start_registry --delay-ms 5000
slow_registry_url=$KAFKA_REGISTRY_URL
KAFKA_REGISTRY_URL=$open_registry_url KAFKA_REGISTRY_LOG=$open_registry_log
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_robust <<SQL
CREATE SERVER slow_registry FOREIGN DATA WRAPPER kafka_fdw
    OPTIONS (brokers '$TANSU_BROKERS', schema_registry '$slow_registry_url', timeout_ms '30000');
CREATE USER MAPPING FOR PUBLIC SERVER slow_registry;
CREATE FOREIGN TABLE slow_avro (id bigint) SERVER slow_registry OPTIONS (topic 'regress_avro', format 'avro');
SQL
{
    echo "SET statement_timeout = '300ms';"
    # Warm up: the pool holds the server's consumer afterwards.
    echo "SELECT id FROM slow_avro;"
    echo "$resources \\g $SERVICE_DIR/before.txt"
    for _ in $(seq 20); do
        echo "SELECT id FROM slow_avro;"
    done
    echo "$resources \\g $SERVICE_DIR/after.txt"
} >"$SERVICE_DIR/cancelled.sql"
started=$(now)
psql -X -q -A -t -d kafka_fdw_robust -f "$SERVICE_DIR/cancelled.sql" 2>"$SERVICE_DIR/cancelled.err" >/dev/null
took=$(elapsed_ms "$started")
cancelled=$(grep -c "canceling statement due to statement timeout" "$SERVICE_DIR/cancelled.err" || true)
read -r threads_before fds_before <"$SERVICE_DIR/before.txt"
read -r threads_after fds_after <"$SERVICE_DIR/after.txt"
echo "$cancelled queries cancelled in $took ms while their registry requests waited; threads $threads_before -> $threads_after, open files $fds_before -> $fds_after"
((cancelled == 21)) || scenario_fail "expected 21 cancelled queries, got $cancelled: $(sort "$SERVICE_DIR/cancelled.err" | uniq -c)"
((took < 21 * 1000)) || scenario_fail "the cancels took $took ms"
((threads_after <= threads_before && fds_after <= fds_before)) || scenario_fail "threads or file descriptors grew"

log "Scenario: a scan of messages of 100 writer schemas of 5 MB keeps the backend within kafka_fdw.schema_cache_size"
# 100 Avro record schemas of 5 MB each (about 76,000 long fields, 69 bytes of JSON
# each; the same fields under 100 record names), registered as versions of
# wide_schemas-value, and one message written with each: its number in the first
# field, zeros in the others.
python3 - "$KAFKA_REGISTRY_URL" >"$SERVICE_DIR/wide.txt" <<'PYTHON'
import json, sys, urllib.request
registry = sys.argv[1]
field = lambda i: {"name": f"field_{i:06d}_of_a_record_with_many_fields", "type": "long"}
fields = 5 * 1024 * 1024 // len(json.dumps(field(0), separators=(",", ":")) + ",") + 1
escapes = {0x0A: b"\\n", 0x0D: b"\\r", 0x5C: b"\\\\"}
for n in range(1, 101):
    schema = json.dumps({"type": "record", "name": f"wide_{n}", "fields": [field(i) for i in range(fields)]}, separators=(",", ":"))
    request = urllib.request.Request(f"{registry}/subjects/wide_schemas-value/versions", json.dumps({"schema": schema}).encode(),
                                     {"Content-Type": "application/vnd.schemaregistry.v1+json"})
    schema_id = json.load(urllib.request.urlopen(request))["id"]
    zigzag, first = 2 * n, bytearray()
    while zigzag >= 0x80:
        first.append(zigzag & 0x7F | 0x80)
        zigzag >>= 7
    first.append(zigzag)
    message = b"\0" + schema_id.to_bytes(4, "big") + bytes(first) + bytes(fields - 1)
    # A line for kafka-tool produce --unescape.
    sys.stdout.buffer.write(b"".join(escapes.get(byte, bytes([byte])) for byte in message) + b"\n")
print(f"registered 100 schemas of {len(schema)} bytes of JSON", file=sys.stderr)
PYTHON
create_topic wide_schemas 1
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic wide_schemas --partition 0 --unescape --file "$SERVICE_DIR/wide.txt" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_robust <<SQL
CREATE SERVER wide_registry FOREIGN DATA WRAPPER kafka_fdw
    OPTIONS (brokers '$TANSU_BROKERS', schema_registry '$KAFKA_REGISTRY_URL', timeout_ms '30000');
CREATE USER MAPPING FOR PUBLIC SERVER wide_registry;
CREATE FOREIGN TABLE wide (n bigint OPTIONS (field 'field_000000_of_a_record_with_many_fields'))
    SERVER wide_registry OPTIONS (topic 'wide_schemas', format 'avro');
SQL
# In a new session with kafka_fdw.schema_cache_size = :'size': the backend's anonymous
# memory (RssAnon) before, after one scan and after a second one, its peak resident
# memory (VmHWM) before and after, and the scans' sums, one "name value" a line.
cat >"$SERVICE_DIR/wide_scan.sql" <<'SQL'
SET kafka_fdw.schema_cache_size = :'size';
-- Loads the library and makes the consumer; decodes nothing.
SELECT count(*) FROM wide \g /dev/null
SELECT pg_backend_pid() AS pid \gset
\setenv BACKEND_PID :pid
\! awk '/^RssAnon:/ { print "anon_before", $2 } /^VmHWM:/ { print "peak_before", $2 }' /proc/$BACKEND_PID/status
SELECT 'sum_1 ' || sum(n) FROM wide;
\! awk '/^RssAnon:/ { print "anon_1", $2 }' /proc/$BACKEND_PID/status
SELECT 'sum_2 ' || sum(n) FROM wide;
\! awk '/^RssAnon:/ { print "anon_2", $2 } /^VmHWM:/ { print "peak_after", $2 }' /proc/$BACKEND_PID/status
SQL
for size in 0 64MB; do
    declare -A wide=()
    while read -r name value; do
        wide[$name]=$value
    done < <(psql -X -q -A -t -v size="$size" -d kafka_fdw_robust -f "$SERVICE_DIR/wide_scan.sql")
    [[ "${wide[sum_1]:-} ${wide[sum_2]:-}" == "5050 5050" ]] || scenario_fail "schema_cache_size $size: the scans read sums ${wide[sum_1]:-none} and ${wide[sum_2]:-none}, not 5050"
    grown=$(((wide[anon_2] - wide[anon_before]) / 1024)) peak=$(((wide[peak_after] - wide[peak_before]) / 1024))
    echo "schema_cache_size $size: anonymous memory +$(((wide[anon_1] - wide[anon_before]) / 1024)) MB after one scan, +$grown MB after two; peak resident +$peak MB"
    if [[ "$size" == 0 ]]; then
        # What reading takes without a cache: the schema being read, the subject's latest
        # (the reader's defaults) and compiling one (parse trees of 5 MB of JSON). Far less
        # than the 500 MB of the schemas' texts, which a cache of them all would hold.
        uncached=$peak
        ((uncached < 500)) || scenario_fail "peak memory grew $uncached MB without a schema cache"
    else
        # The cache's 64 MB (its estimate of what compiled schemas hold) on top of that, with
        # room for malloc's fragmentation. Unbounded, 100 compiled schemas hold about 2 GB.
        ((peak <= uncached + 64 + 64)) || scenario_fail "peak memory grew $peak MB with a 64 MB cache (without one: $uncached MB)"
        ((grown <= uncached + 64 + 64)) || scenario_fail "memory grew $grown MB with a 64 MB cache (without one: $uncached MB)"
    fi
done

log "Scenario: brokers 300 ms and 1 s away answer as at 0 ms; a silent broker fails within timeout_ms + 1 s"
# Each round reads, writes and imports its own copy of the same topic (mock cluster, all
# brokers delayed by mock-ctl rtt-all), in a new session so that connections are new too.
createdb kafka_fdw_distance
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_distance <<SQL
CREATE EXTENSION kafka_fdw;
CREATE SERVER far FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$MOCK_BROKERS', timeout_ms '10000');
CREATE USER MAPPING FOR PUBLIC SERVER far;
SQL
rows 1 1000 >"$SERVICE_DIR/distance.csv"
for rtt in 0 300 1000; do
    "$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" create-topic "far_$rtt" 4 >/dev/null
    "$KAFKA_TOOL" produce --brokers "$MOCK_BROKERS" --topic "far_$rtt" --round-robin --file "$SERVICE_DIR/distance.csv" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_distance <<SQL
CREATE FOREIGN TABLE far_$rtt (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER far OPTIONS (topic 'far_$rtt');
CREATE TABLE far_target_$rtt (part int, offs bigint, n int, t text);
SQL
done
distance_round() { # distance_round RTT: the statements' output, with the round's names made alike
    local rtt=$1 started
    "$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" rtt-all "$rtt" >/dev/null
    started=$(now)
    psql -X -A -v ON_ERROR_STOP=1 -d kafka_fdw_distance >"$SERVICE_DIR/distance_$rtt.out" 2>&1 <<SQL || scenario_fail "at RTT $rtt ms: $(cat "$SERVICE_DIR/distance_$rtt.out")"
SELECT count(*), sum(n) FROM far_$rtt;
SELECT * FROM far_$rtt WHERE part = 1 AND offs = 100;
SELECT * FROM kafka_fdw.watermarks('far_$rtt') ORDER BY partition;
SELECT * FROM kafka_fdw.offsets_for_time('far_$rtt', '2020-01-01') ORDER BY partition;
INSERT INTO far_$rtt (part, n, t) SELECT i % 4, 1000 + i, 'inserted ' || i FROM generate_series(1, 10) i;
SELECT kafka_fdw.import('far_$rtt', 'far_target_$rtt');
SELECT count(*), count(DISTINCT (part, offs)), sum(n) FROM far_target_$rtt;
SELECT count(*), sum(n) FROM far_$rtt;
SQL
    echo "RTT $rtt ms: every statement done in $(elapsed_ms "$started") ms"
    sed -i "s/far_$rtt/far_RTT/g; s/far_target_$rtt/far_target_RTT/g" "$SERVICE_DIR/distance_$rtt.out"
}
distance_round 0
distance_round 300
distance_round 1000
"$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" rtt-all 0 >/dev/null
for rtt in 300 1000; do
    diff "$SERVICE_DIR/distance_0.out" "$SERVICE_DIR/distance_$rtt.out" >&2 || scenario_fail "RTT $rtt ms answered differently from RTT 0"
done

# A broker that accepts connections and never answers.
silent_port=$(free_port)
python3 -c "
import socket, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', $silent_port))
server.listen()
held = []
deadline = time.time() + 120
server.settimeout(1)
while time.time() < deadline:
    try:
        held.append(server.accept())
    except socket.timeout:
        pass
" &
silent_pid=$!
SERVICE_PIDS+=("$silent_pid")
sleep 0.3
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_distance <<SQL
CREATE SERVER silent FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '127.0.0.1:$silent_port', timeout_ms '2000');
CREATE USER MAPPING FOR PUBLIC SERVER silent;
CREATE FOREIGN TABLE silent_table (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER silent OPTIONS (topic 'anything');
SQL
for statement in "SELECT count(*) FROM silent_table" "SELECT * FROM kafka_fdw.watermarks('silent_table')" \
    "INSERT INTO silent_table (n, t) VALUES (1, 'never')"; do
    started=$(now)
    psql -X -d kafka_fdw_distance -c "$statement" >"$SERVICE_DIR/silent.out" 2>&1 && scenario_fail "\"$statement\" succeeded on a silent broker"
    took=$(elapsed_ms "$started")
    echo "silent broker, timeout_ms 2000: \"$statement\" failed after $took ms: $(grep ERROR "$SERVICE_DIR/silent.out" | head -1)"
    ((took < 3000)) || scenario_fail "\"$statement\" took $took ms"
done
kill "$silent_pid" 2>/dev/null || true

log "Scenario: 16 connections insert, scan and import for 30 s on tansu, with a scheduled job"
# 12 connections INSERT 50 uniquely numbered rows and count the topic, 4 import it into
# one table (they take turns: one import per pair at a time), and the scheduler imports
# it into another every second. Each connection stops starting statements after 30 s.
create_topic load_topic 4
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_scheduler <<SQL
CREATE FOREIGN TABLE load_source (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n bigint, t text)
SERVER s OPTIONS (topic 'load_topic');
CREATE TABLE load_imported (part int, offs bigint, n bigint, t text);
CREATE TABLE load_scheduled (part int, offs bigint, n bigint, t text);
SELECT kafka_fdw.start_import('load_source', 'load_scheduled');
SQL
load_script() { # load_script CONNECTION KIND: a psql script that works until the deadline
    local connection=$1 kind=$2 i
    echo "SELECT (clock_timestamp() + interval '30 seconds')::text AS deadline \\gset"
    for i in $(seq 1 2000); do
        echo "SELECT clock_timestamp() < :'deadline' AS go \\gset"
        echo "\\if :go"
        if [[ "$kind" == writer ]]; then
            echo "INSERT INTO load_source (n, t) SELECT $connection * 1000000 + $i * 100 + k, 'connection $connection' FROM generate_series(1, 50) k;"
            echo "\\echo statement"
            echo "SELECT count(*) >= 0 AS scanned FROM load_source WHERE part = $((i % 4)) \\g /dev/null"
            echo "\\echo statement"
        else
            echo "SELECT kafka_fdw.import('load_source', 'load_imported') \\g /dev/null"
            echo "\\echo statement"
        fi
        echo "\\endif"
    done
}
load_pids=()
for connection in $(seq 1 16); do
    kind=writer
    ((connection > 12)) && kind=importer
    load_script "$connection" "$kind" >"$SERVICE_DIR/load_$connection.sql"
    psql -X -d kafka_fdw_scheduler -f "$SERVICE_DIR/load_$connection.sql" >"$SERVICE_DIR/load_$connection.out" 2>"$SERVICE_DIR/load_$connection.err" &
    load_pids+=($!)
done
load_started=$SECONDS
for pid in "${load_pids[@]}"; do
    wait "$pid" || true
done
statements=$(cat "$SERVICE_DIR"/load_*.out | grep -c '^statement$')
errors=$(cat "$SERVICE_DIR"/load_*.err | grep -c 'ERROR' || true)
acknowledged=$(cat "$SERVICE_DIR"/load_*.out | grep -c '^INSERT 0 50$')
echo "load: $statements statements in $((SECONDS - load_started)) s, $errors failed; $acknowledged INSERTs of 50 rows acknowledged"
if ((errors > 0)); then
    cat "$SERVICE_DIR"/load_*.err | grep ERROR | sort | uniq -c | sort -rn | head >&2
    scenario_fail "$errors statements failed under load"
fi
read -r in_topic distinct_in_topic <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT count(*), count(DISTINCT n) FROM load_source")"
echo "load: the topic holds $in_topic messages, $distinct_in_topic distinct"
((in_topic == acknowledged * 50 && distinct_in_topic == in_topic)) || scenario_fail "the topic holds $in_topic messages ($distinct_in_topic distinct), $((acknowledged * 50)) acknowledged"
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.import('load_source', 'load_imported')" >/dev/null
for target in load_imported load_scheduled; do
    for _ in $(seq 100); do
        read -r rows distinct_rows missing <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT count(*), count(DISTINCT (part, offs)), (SELECT count(*) FROM (SELECT * FROM load_source EXCEPT ALL SELECT * FROM $target) d) FROM $target")"
        [[ "$rows" == "$in_topic" && "$missing" == 0 ]] && break
        sleep 0.2
    done
    echo "load: $target holds $rows rows ($distinct_rows distinct), $missing of the topic's messages missing"
    [[ "$rows" == "$in_topic" && "$distinct_rows" == "$in_topic" && "$missing" == 0 ]] || scenario_fail "$target differs from the topic"
done
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.stop_import('load_source', 'load_scheduled')" >/dev/null

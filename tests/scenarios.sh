# Scenario tests that restart or crash the server, which pg_regress cannot do. Sourced by
# tests/run.sh with the broker and PostgreSQL up (PGHOST/PGPORT set, the scheduler
# configured for database kafka_fdw_scheduler).

scenario_fail() {
    echo "SCENARIO FAILED: $*" >&2
    exit 1
}

# await_backend DB CONDITION: the pid of a backend of pg_stat_activity matching
# CONDITION (SQL), once there is one (within 10 s), or a scenario failure.
await_backend() {
    local pid=""
    for _ in $(seq 100); do
        pid=$(psql -X -A -t -d "$1" -c "SELECT pid FROM pg_stat_activity WHERE $2 LIMIT 1")
        [[ -n "$pid" ]] && { echo "$pid"; return 0; }
        sleep 0.1
    done
    scenario_fail "no backend where $2"
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
CREATE SERVER s FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$KAFKA_BROKERS');
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
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic crash_source --round-robin --file "$SERVICE_DIR/crash.csv" >/dev/null
setup_import_database kafka_fdw_crash crash_source
for _ in $(seq 200); do
    echo "SELECT kafka_fdw.import('source', 'target', max_messages => 1500);"
done >"$SERVICE_DIR/imports.sql"
kill_imports() { # kill_imports DB SCRIPT [TIMES]: kill -9 the backend running SCRIPT's imports, TIMES (20) times
    kills=0
    while ((kills < ${3:-20})); do
        PGAPPNAME=crash_victim psql -X -q -d "$1" -f "$2" >/dev/null 2>&1 &
        importer=$!
        # 0 to 2 s: before, during or after the first import of the session commits.
        sleep "$((RANDOM % 2)).$((RANDOM % 10))$((RANDOM % 10))"
        victim=$(psql -X -A -t -d "$1" -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash_victim' AND state = 'active'" 2>/dev/null | head -n 1)
        # The session may have ended meanwhile (its imports done): no kill then.
        if [[ -n "$victim" ]] && kill -9 "$victim" 2>/dev/null; then
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

log "Scenario: kill -9 the backend of a running import over a topic pattern, 10 times, a fifth topic created between the kills"
many_rows() { # many_rows TOPIC FIRST LAST: rows into TOPIC, round robin
    rows "$2" "$3" >"$SERVICE_DIR/crash_many.csv"
    "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic "$1" --round-robin --file "$SERVICE_DIR/crash_many.csv" >/dev/null
}
for i in 1 2 3 4; do
    create_topic "crash_many_$i" "$i"
    many_rows "crash_many_$i" $((i * 100000 + 1)) $((i * 100000 + 12000))
done
createdb kafka_fdw_crash_many
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_crash_many <<SQL
CREATE EXTENSION kafka_fdw;
CREATE SERVER s FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$KAFKA_BROKERS');
CREATE USER MAPPING FOR PUBLIC SERVER s;
CREATE FOREIGN TABLE source (topic text OPTIONS (topic 'true'), part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER s OPTIONS (topic_pattern 'crash_many_[0-9]+');
CREATE TABLE target (topic text, part int, offs bigint, n int, t text);
SQL
for _ in $(seq 200); do
    echo "SELECT kafka_fdw.import('source', 'target', max_messages => 1500);"
done >"$SERVICE_DIR/many_imports.sql"
kill_imports kafka_fdw_crash_many "$SERVICE_DIR/many_imports.sql" 5
first_kills=$kills
create_topic crash_many_5 2
many_rows crash_many_5 500001 512000
kill_imports kafka_fdw_crash_many "$SERVICE_DIR/many_imports.sql" 5
read -r before_rows before_distinct <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_crash_many -c "SELECT count(*), count(DISTINCT (topic, part, offs)) FROM target")"
echo "before the final run: $before_rows rows, $before_distinct distinct messages (of 60000)"
[[ "$before_rows" == "$before_distinct" ]] || scenario_fail "duplicates after crashes"
psql -X -q -d kafka_fdw_crash_many -c "SELECT kafka_fdw.import('source', 'target')" >/dev/null
# Per topic: rows of the target, distinct messages among them, messages in the topic (kafka-tool).
for i in 1 2 3 4 5; do
    in_topic=$("$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic "crash_many_$i" | cut -d' ' -f1)
    read -r imported distinct <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_crash_many -c "SELECT count(*), count(DISTINCT (part, offs)) FROM target WHERE topic = 'crash_many_$i'")"
    echo "crash_many_$i: $imported rows, $distinct distinct messages, $in_topic in the topic"
    [[ "$imported" == "$distinct" && "$imported" == "$in_topic" ]] || scenario_fail "crash_many_$i: $imported rows, $distinct distinct, $in_topic in the topic"
done
echo "killed $((first_kills + kills)) times (5 before crash_many_5 existed, 5 after)"

log "Scenario: kill -9 the backend of a running upsert import, 20 times"
# 60000 keyed messages over 5000 keys, every 9th a tombstone; keys stay in their partition.
keyed_rows() { # keyed_rows FIRST LAST KEYS: "key|n,message n", or "key|DELETE" (a tombstone) for every 9th
    seq "$1" "$2" | awk -v keys="$3" '{ k = ($1 * 7919) % keys; if ($1 % 9 == 0) printf "%d|DELETE\n", k; else printf "%d|%d,message %d\n", k, $1, $1 }'
}
produce_keyed() { # produce_keyed TOPIC FILE
    "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic "$1" --key-delimiter '|' --tombstone DELETE --file "$2" >/dev/null
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
CREATE SERVER s FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$KAFKA_BROKERS');
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

log "Scenario: kill -9 of a backend inside a transaction that wrote to a transactional table"
# The backend's Kafka transaction stays open: read_committed readers (kafka_fdw's scans
# and kafka-tool's consumer) stop at it and never see its messages; read_uncommitted
# readers do. The broker aborts it once transaction.timeout.ms (5 s here) passes, and
# messages committed after it become visible then, the killed ones never.
create_topic txn_killed 2
createdb kafka_fdw_txn
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_txn <<SQL
CREATE EXTENSION kafka_fdw;
CREATE SERVER s FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (brokers '$KAFKA_BROKERS', transactional 'true', timeout_ms '3000', "transaction.timeout.ms" '5000');
CREATE USER MAPPING FOR PUBLIC SERVER s;
CREATE FOREIGN TABLE out (part int OPTIONS (partition 'true'), n int, t text) SERVER s OPTIONS (topic 'txn_killed');
CREATE FOREIGN TABLE out_uncommitted (part int OPTIONS (partition 'true'), n int, t text)
SERVER s OPTIONS (topic 'txn_killed', isolation_level 'read_uncommitted');
SQL
txn_counts() { # messages of the killed transaction (n <= 1000) and committed later (n > 1000): read_committed, read_uncommitted
    psql -X -A -t -F ' ' -d kafka_fdw_txn -c "SELECT count(*) FILTER (WHERE n <= 1000), count(*) FILTER (WHERE n > 1000) FROM out" \
        -c "SELECT count(*) FILTER (WHERE n <= 1000), count(*) FILTER (WHERE n > 1000) FROM out_uncommitted" | paste -sd' '
}
PGAPPNAME=txn_victim psql -X -q -d kafka_fdw_txn >/dev/null 2>&1 <<'SQL' &
BEGIN;
INSERT INTO out (n, t) SELECT i, 'killed ' || i FROM generate_series(1, 1000) i;
SELECT pg_sleep(60);
SQL
victim_psql=$!
victim=$(await_backend kafka_fdw_txn "application_name = 'txn_victim' AND query LIKE 'SELECT pg_sleep%'")
kill -9 "$victim"
wait "$victim_psql" 2>/dev/null || true
wait_for_server kafka_fdw_txn
read -r killed_committed _ killed_uncommitted _ <<<"$(txn_counts)"
raw_committed=$("$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic txn_killed --isolation-level read_committed | cut -d' ' -f1)
echo "after kill -9: read_committed scan $killed_committed, kafka-tool read_committed $raw_committed, read_uncommitted scan $killed_uncommitted of the 1000 messages"
((killed_committed == 0 && raw_committed == 0 && killed_uncommitted == 1000)) || scenario_fail "the killed transaction's messages are visible"
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_txn -c "INSERT INTO out (n, t) SELECT i, 'committed ' || i FROM generate_series(1001, 1010) i"
started=$SECONDS
# The later commit's messages stay invisible behind the killed transaction until the
# broker aborts it, and the abort's markers reach the two partitions one after the other:
# for a moment a reader sees one partition's share of them (6 of the 10 once), so this
# waits for all 10 (or gives up after 200 looks) and then checks what every reader sees.
for _ in $(seq 200); do
    read -r killed_committed later_committed killed_uncommitted later_uncommitted <<<"$(txn_counts)"
    ((later_committed >= 10)) && break
    sleep 0.1
done
raw_committed=$("$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic txn_killed --isolation-level read_committed | cut -d' ' -f1)
echo "a later commit became visible $((SECONDS - started)) s after it: read_committed $killed_committed killed + $later_committed later (kafka-tool: $raw_committed); read_uncommitted $killed_uncommitted + $later_uncommitted"
((killed_committed == 0 && later_committed == 10 && raw_committed == 10 && killed_uncommitted == 1000 && later_uncommitted == 10)) \
    || scenario_fail "after the broker aborted the killed transaction, read_committed readers do not see exactly the 10 committed messages"

log "Scenario: a 1-second scheduled import keeps up, across a server restart"
create_topic sched_source 2
rows 1 1000 >"$SERVICE_DIR/sched1.csv"
rows 1001 2000 >"$SERVICE_DIR/sched2.csv"
rows 2001 3000 >"$SERVICE_DIR/sched3.csv"
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic sched_source --round-robin --file "$SERVICE_DIR/sched1.csv" >/dev/null
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
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic sched_source --round-robin --file "$SERVICE_DIR/sched2.csv" >/dev/null
converge 2000
# Messages arrive while the server is down; the job resumes from its stored offsets.
pg_stop
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic sched_source --round-robin --file "$SERVICE_DIR/sched3.csv" >/dev/null
pg_start
wait_for_server kafka_fdw_scheduler
converge 3000
psql -X -A -t -d kafka_fdw_scheduler -c "SELECT state, last_error IS NULL FROM kafka_fdw.import_jobs_status"

log "Scenario: the scheduler is terminated, comes back, and its job runs again"
scheduler_pid() {
    psql -X -A -t -d kafka_fdw_scheduler -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'kafka_fdw scheduler'"
}
old_pid=$(scheduler_pid)
[[ -n "$old_pid" ]] || scenario_fail "no scheduler running"
rows 3001 4000 >"$SERVICE_DIR/sched4.csv"
psql -X -q -A -t -d kafka_fdw_scheduler -c "SELECT pg_terminate_backend($old_pid)" >/dev/null
terminated=$SECONDS
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic sched_source --round-robin --file "$SERVICE_DIR/sched4.csv" >/dev/null
converge 4000
new_pid=$(scheduler_pid)
echo "scheduler $old_pid terminated; running again as $new_pid, job caught up $((SECONDS - terminated)) s after the termination"
[[ -n "$new_pid" && "$new_pid" != "$old_pid" ]] || scenario_fail "the scheduler did not come back (pid '$new_pid')"
grep -q "kafka_fdw scheduler started" "$SERVICE_DIR/postgres.log" || scenario_fail "the scheduler's start is not logged"

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

log "Scenario: a 1-second import job with group_id shows its lag in kafka-consumer-groups, across kill -9 of its runs"
# "partitions lag" of GROUP on the topic as Apache Kafka's kafka-consumer-groups --describe
# shows them (the sum of its LAG column), or "0 0" when it shows no partition.
consumer_group_lag() { # consumer_group_lag GROUP
    "${KAFKA_JAVA[@]}" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$KAFKA_BROKERS" \
        --describe --group "$1" 2>"$SERVICE_DIR/consumer-groups.err" |
        awk -v group="$1" '$1 == group && $2 == "group_source" { partitions++; lag += $6 } END { print partitions + 0, lag + 0 }'
}
group_counts() { # rows, distinct messages and messages in the topic; the job's lag in PostgreSQL
    psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT (SELECT count(*) FROM group_target), (SELECT count(DISTINCT (part, offs)) FROM group_target),
        (SELECT count(*) FROM group_src), (SELECT lag FROM kafka_fdw.import_jobs_status WHERE target = 'group_target'::regclass)"
}
group_converge() { # group_converge EXPECTED: the target holds the topic's EXPECTED messages once each, the group's lag 0
    local started=$SECONDS imported distinct in_topic lag partitions group_lag
    while ((SECONDS - started < 60)); do
        read -r imported distinct in_topic lag <<<"$(group_counts 2>/dev/null)"
        if [[ "$imported" == "$1" && "$distinct" == "$1" && "$in_topic" == "$1" && "$lag" == 0 ]]; then
            read -r partitions group_lag <<<"$(consumer_group_lag kafka_fdw_group_job)"
            if [[ "$partitions" == 3 && "$group_lag" == 0 ]]; then
                echo "imported $1 messages once each; kafka-consumer-groups: lag 0 on 3 partitions, $((SECONDS - started)) s"
                return 0
            fi
        fi
        sleep 0.5
    done
    cat "$SERVICE_DIR/consumer-groups.err" >&2
    scenario_fail "the group job did not converge to $1 messages with lag 0 ($imported rows, $distinct distinct, $in_topic in the topic, lag $lag; group: $partitions partitions, lag $group_lag)"
}
create_topic group_source 3
rows 1 3000 >"$SERVICE_DIR/group1.csv"
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic group_source --round-robin --file "$SERVICE_DIR/group1.csv" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_scheduler >/dev/null <<SQL
CREATE FOREIGN TABLE group_src (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER s OPTIONS (topic 'group_source');
CREATE TABLE group_target (part int, offs bigint, n int, t text);
SELECT kafka_fdw.start_import('group_src', 'group_target', group_id => 'kafka_fdw_group_job');
SQL
group_converge 3000
# With the job stopped, a producer runs ahead: the group's lag is what is not imported.
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.stop_import('group_src', 'group_target')" >/dev/null
rows 3001 4000 >"$SERVICE_DIR/group2.csv"
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic group_source --round-robin --file "$SERVICE_DIR/group2.csv" >/dev/null
read -r partitions group_lag <<<"$(consumer_group_lag kafka_fdw_group_job)"
read -r imported _ in_topic lag <<<"$(group_counts)"
echo "producer ahead of the stopped job: kafka-consumer-groups lag $group_lag on $partitions partitions; $imported imported of $in_topic"
((partitions == 3 && group_lag == in_topic - imported && group_lag == 1000)) ||
    scenario_fail "kafka-consumer-groups shows lag $group_lag on $partitions partitions, not the $((in_topic - imported)) messages not imported"
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.start_import('group_src', 'group_target', group_id => 'kafka_fdw_group_job')" >/dev/null
group_converge 4000
# kill -9 of the job's runs while they import (the server restarts after each): no
# duplicate, no gap, and the group's offsets catch up at the next runs.
kills=0 total=4000
for round in 1 2 3 4 5; do
    rows "$((total + 1))" "$((total + 30000))" >"$SERVICE_DIR/group_kill.csv"
    "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic group_source --round-robin --file "$SERVICE_DIR/group_kill.csv" >/dev/null
    total=$((total + 30000))
    for _ in $(seq 100); do
        victim=$(psql -X -A -t -d kafka_fdw_scheduler -c "SELECT r.pid FROM kafka_fdw.task_runs r JOIN kafka_fdw.tasks t USING (task_id)
            WHERE t.target = 'group_target'::regclass AND r.status = 'running' AND r.pid IS NOT NULL" 2>/dev/null | head -n 1)
        [[ -n "$victim" ]] && break
        sleep 0.02
    done
    if [[ -n "$victim" ]] && kill -9 "$victim" 2>/dev/null; then
        kills=$((kills + 1))
    fi
    wait_for_server kafka_fdw_scheduler
done
echo "killed $kills runs of the job"
((kills > 0)) || scenario_fail "no run of the group job was caught running"
group_converge "$total"
# The job's counters count the runs that committed, and their rows: every message since
# it was started again (at 3,000) once, the killed runs' rows not at all.
read -r runs job_rows <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT runs, rows FROM kafka_fdw.import_jobs_status WHERE target = 'group_target'::regclass")"
echo "the job counts $runs runs and $job_rows rows"
((job_rows == total - 3000 && runs > 0)) || scenario_fail "the job counts $job_rows rows in $runs runs, not the $((total - 3000)) it imported"
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.stop_import('group_src', 'group_target')" >/dev/null

log "Scenario: a scheduled SQL task runs the reference page's import_kafka_data every second, across a scheduler crash"
create_topic task_source 2
rows 1 1000 >"$SERVICE_DIR/task1.csv"
rows 1001 2000 >"$SERVICE_DIR/task2.csv"
rows 2001 3000 >"$SERVICE_DIR/task3.csv"
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic task_source --round-robin --file "$SERVICE_DIR/task1.csv" >/dev/null
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
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic task_source --round-robin --file "$SERVICE_DIR/task2.csv" >/dev/null
task_converge 2000
# A task that outlasts its 1-second interval never overlaps itself; the scheduler is
# killed (kill -9: the server restarts, every backend with it) in the middle of one of
# its runs, which is then recorded as failed. (pg_terminate_backend of the scheduler
# leaves runs alone: each is a process of its own.)
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
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic task_source --round-robin --file "$SERVICE_DIR/task3.csv" >/dev/null
task_converge 3000
read -r interrupted_status interrupted_message <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT status, return_message FROM kafka_fdw.task_run_details WHERE runid = $running")"
echo "run $running of the sleeper, cut short by kill -9 of the scheduler: $interrupted_status ($interrupted_message)"
[[ "$interrupted_status" == failed && "$interrupted_message" == "the run ended without recording an outcome"* ]] || scenario_fail "the interrupted run is $interrupted_status: $interrupted_message"
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
       count(*), count(*) FILTER (WHERE status = 'failed' AND return_message NOT LIKE 'the run ended without recording an outcome%'),
       round(extract(epoch FROM max(start_time) - min(start_time))::numeric / greatest(count(*) - 1, 1), 2)
FROM kafka_fdw.task_run_details WHERE task = 'import_kafka_data';
SQL
)"
echo "import_kafka_data: $import_runs runs, one every $period s on average (the 2 s sleeper in between), $import_failed failed; sleeper: $sleeper_runs runs, $overlaps overlapping runs"
((overlaps == 0)) || scenario_fail "$overlaps runs overlapped a run of the same task"
((import_failed == 0)) || scenario_fail "$import_failed runs of import_kafka_data failed"
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.unschedule('sleeper'), kafka_fdw.unschedule('import_kafka_data')" >/dev/null

log "Scenario: a 90-second task holds up no 1-second job, and a fast shutdown does not wait for it"
# The 1-second import job of the first scheduler scenario still runs (source into target).
job=$(psql -X -A -t -d kafka_fdw_scheduler -c "SELECT job_id FROM kafka_fdw.import_jobs_status WHERE target = 'target'::regclass")
[[ -n "$job" ]] || scenario_fail "the 1-second job is gone"
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.schedule('sleep90', '1 seconds', 'SELECT pg_sleep(90)')" >/dev/null
for _ in $(seq 100); do
    sleeping=$(psql -X -A -t -d kafka_fdw_scheduler -c "SELECT count(*) FROM kafka_fdw.task_run_details WHERE task = 'sleep90' AND status = 'running'")
    ((sleeping == 1)) && break
    sleep 0.1
done
((sleeping == 1)) || scenario_fail "the 90-second task did not start"
window_start=$(psql -X -A -t -d kafka_fdw_scheduler -c "SELECT clock_timestamp()")
sleep 30
read -r job_runs p99 longest <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler <<SQL
SELECT count(*), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY gap)::numeric, 3), round(max(gap)::numeric, 3)
FROM (SELECT extract(epoch FROM start_time - lag(start_time) OVER (ORDER BY runid)) AS gap
      FROM kafka_fdw.task_runs WHERE task_id = $job AND start_time >= '$window_start') gaps
WHERE gap IS NOT NULL;
SQL
)"
echo "beside a task sleeping 90 s, the 1-second job ran $((job_runs + 1)) times in 30 s: p99 interval $p99 s, longest $longest s"
((job_runs >= 25)) || scenario_fail "the 1-second job ran only $((job_runs + 1)) times in 30 s"
awk -v p="$p99" 'BEGIN { exit !(p <= 1.5) }' || scenario_fail "p99 interval of the 1-second job: $p99 s"
started=$(date +%s%N)
pg_stop
stop_ms=$((($(date +%s%N) - started) / 1000000))
echo "pg_ctl stop -m fast with the 90-second run in progress: $stop_ms ms"
((stop_ms < 5000)) || scenario_fail "fast shutdown took $stop_ms ms"
pg_start
wait_for_server kafka_fdw_scheduler
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.unschedule('sleep90')" >/dev/null

log "Scenario: pg_dump and pg_restore into a cluster whose roles have other OIDs: each task and job runs as the role of its name"
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_scheduler >/dev/null <<'SQL'
CREATE ROLE dump_alice LOGIN;
CREATE ROLE dump_bob LOGIN;
GRANT USAGE ON SCHEMA kafka_fdw TO dump_alice, dump_bob;
CREATE TABLE ran_as (task text, who name, session name);
GRANT INSERT ON ran_as TO dump_alice, dump_bob;
CREATE TABLE alice_target (n int, t text);
CREATE FUNCTION record_importer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.ran_as VALUES ('alice''s job', current_user, session_user);
    RETURN NULL;
END
$$;
CREATE TRIGGER record_importer AFTER INSERT ON alice_target FOR EACH STATEMENT EXECUTE FUNCTION record_importer();
GRANT SELECT ON source TO dump_alice;
GRANT INSERT ON alice_target TO dump_alice;
SET ROLE dump_alice;
SELECT kafka_fdw.schedule('alice_task', '1 seconds', $$INSERT INTO ran_as VALUES ('alice''s task', current_user, session_user)$$);
SELECT kafka_fdw.start_import('source', 'alice_target');
SET ROLE dump_bob;
SELECT kafka_fdw.schedule('bob_task', '1 seconds', $$INSERT INTO ran_as VALUES ('bob''s task', current_user, session_user)$$);
RESET ROLE;
SQL
as_postgres "$PG_BIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -Fc -f "$SERVICE_DIR/scheduler.dump" kafka_fdw_scheduler
psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.unschedule(task_id) FROM kafka_fdw.tasks WHERE owner LIKE 'dump_%'" >/dev/null
# Both clusters' schedulers work in a database of that name; each runs its own tasks
# into its own tables.
restored_port=$(start_extra_postgres restored)
# Roles created in another order, with others before them: other OIDs.
psql -X -q -v ON_ERROR_STOP=1 -p "$restored_port" -d postgres <<'SQL'
CREATE ROLE padding_1;
CREATE ROLE dump_bob LOGIN;
CREATE ROLE padding_2;
CREATE ROLE dump_alice LOGIN;
CREATE DATABASE kafka_fdw_scheduler;
SQL
as_postgres "$PG_BIN/pg_restore" --exit-on-error -h "$PGHOST" -p "$restored_port" -d kafka_fdw_scheduler "$SERVICE_DIR/scheduler.dump"
ran_as() { psql -X -A -t -F ' ' -p "$restored_port" -d kafka_fdw_scheduler -c "SELECT DISTINCT task, who, session FROM ran_as ORDER BY 1" 2>/dev/null; }
for _ in $(seq 300); do
    [[ "$(ran_as | wc -l)" == 3 ]] && break
    sleep 0.1
done
ran_as
expected=$'alice\'s job dump_alice dump_alice\nalice\'s task dump_alice dump_alice\nbob\'s task dump_bob dump_bob'
[[ "$(ran_as)" == "$expected" ]] || scenario_fail "restored tasks and jobs ran as: $(ran_as)"
read -r restored_oids <<<"$(psql -X -A -t -p "$restored_port" -d kafka_fdw_scheduler -c "SELECT string_agg(oid::text, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'dump_%'")"
echo "restored: alice and bob have OIDs $restored_oids there; the tasks and the job ran as the roles of their names"
as_postgres "$PG_BIN/pg_ctl" -D "$SERVICE_DIR/restored" -w -m fast stop >/dev/null

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
    local victim_psql=$! pid started
    pid=$(await_backend kafka_fdw_robust "application_name = 'cancel_victim' AND state = 'active'")
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
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic leak_bad --partition 0 --file "$SERVICE_DIR/bad.csv" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_robust <<SQL
CREATE SERVER nowhere FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '127.0.0.1:$(free_port)', timeout_ms '20');
CREATE USER MAPPING FOR PUBLIC SERVER nowhere;
CREATE FOREIGN TABLE unreachable (n int, t text) SERVER nowhere OPTIONS (topic 'leak_bad');
CREATE SERVER kafka FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$KAFKA_BROKERS');
CREATE USER MAPPING FOR PUBLIC SERVER kafka;
CREATE FOREIGN TABLE bad_messages (n int, t text) SERVER kafka OPTIONS (topic 'leak_bad');
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
    OPTIONS (brokers '$KAFKA_BROKERS', schema_registry '$slow_registry_url', timeout_ms '30000');
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

# The scenarios from here on exercise the brokers, the Schema Registry and librdkafka,
# which are the same on every PostgreSQL version: tests/run.sh's matrix runs them with
# its first version only (KAFKA_FDW_BROKER_TESTS=0 on the others).
[[ "${KAFKA_FDW_BROKER_TESTS:-1}" == 1 ]] || return 0

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
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic wide_schemas --partition 0 --unescape --file "$SERVICE_DIR/wide.txt" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_robust <<SQL
CREATE SERVER wide_registry FOREIGN DATA WRAPPER kafka_fdw
    OPTIONS (brokers '$KAFKA_BROKERS', schema_registry '$KAFKA_REGISTRY_URL', timeout_ms '30000');
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

log "Scenario: brokers 300 ms and 1 s away answer as at 0 ms (a parallel scan, and an upsert import's error naming its message and column, too); a silent broker fails within timeout_ms + 1 s (an INSERT + 1.5 s)"
# Each round reads, writes and imports its own copy of the same topic (mock cluster, all
# brokers delayed by mock-ctl rtt-all), in a new session so that connections are new too.
createdb kafka_fdw_distance
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_distance <<SQL
CREATE EXTENSION kafka_fdw;
CREATE SERVER far FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$MOCK_BROKERS', timeout_ms '10000');
CREATE USER MAPPING FOR PUBLIC SERVER far;
CREATE SERVER far_parallel FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (brokers '$MOCK_BROKERS', timeout_ms '10000', mpp_execute 'all segments');
CREATE USER MAPPING FOR PUBLIC SERVER far_parallel;
SQL
rows 1 1000 >"$SERVICE_DIR/distance.csv"
for rtt in 0 300 1000; do
    "$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" create-topic "far_$rtt" 4 >/dev/null
    "$KAFKA_TOOL" produce --brokers "$MOCK_BROKERS" --topic "far_$rtt" --round-robin --file "$SERVICE_DIR/distance.csv" >/dev/null
    # One partition whose second message has a value an int column refuses: the import's
    # error finds its column by reading that message again, column by column.
    "$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" create-topic "far_${rtt}_bad" 1 >/dev/null
    printf '1,1\n2,two\n3,3\n' | "$KAFKA_TOOL" produce --brokers "$MOCK_BROKERS" --topic "far_${rtt}_bad" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_distance <<SQL
CREATE FOREIGN TABLE far_$rtt (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER far OPTIONS (topic 'far_$rtt');
CREATE TABLE far_target_$rtt (part int, offs bigint, n int, t text);
CREATE FOREIGN TABLE far_${rtt}_parallel (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER far_parallel OPTIONS (topic 'far_$rtt');
CREATE FOREIGN TABLE far_${rtt}_bad (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER far OPTIONS (topic 'far_${rtt}_bad');
CREATE TABLE far_${rtt}_bad_target (n int PRIMARY KEY, t int);
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
-- A parallel plan: each worker's clients connect anew at this distance.
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
EXPLAIN (COSTS OFF) SELECT count(*), count(DISTINCT (part, offs)), sum(n) FROM far_${rtt}_parallel;
SELECT count(*), count(DISTINCT (part, offs)), sum(n) FROM far_${rtt}_parallel;
RESET max_parallel_workers_per_gather;
DO \$\$
DECLARE
    detail text;
BEGIN
    PERFORM kafka_fdw.import('far_${rtt}_bad', 'far_${rtt}_bad_target', mode => 'upsert');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE '% % / %', SQLSTATE, SQLERRM, detail;
END
\$\$;
SQL
    echo "RTT $rtt ms: every statement done in $(elapsed_ms "$started") ms"
    sed -i "s/far_$rtt/far_RTT/g; s/far_target_$rtt/far_target_RTT/g" "$SERVICE_DIR/distance_$rtt.out"
}
distance_round 0
distance_round 300
distance_round 1000
"$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" rtt-all 0 >/dev/null
refused='22P02 invalid value in Kafka message at topic "far_RTT_bad", partition 0, offset 1 / Column "t": invalid input syntax for type integer: "two"'
grep -qF "$refused" "$SERVICE_DIR/distance_0.out" || scenario_fail "the upsert import's error does not name the message and column: $(grep NOTICE "$SERVICE_DIR/distance_0.out")"
grep -F "$refused" "$SERVICE_DIR/distance_0.out"
grep -q "Parallel Foreign Scan on far_RTT_parallel" "$SERVICE_DIR/distance_0.out" || scenario_fail "the scan of far_RTT_parallel was not planned parallel: $(cat "$SERVICE_DIR/distance_0.out")"
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
    # librdkafka fails timed-out messages on a scan about once a second, so an INSERT's
    # delivery reports may come up to a second after timeout_ms; reads answer within it.
    limit=3000
    [[ "$statement" == INSERT* ]] && limit=3500
    ((took < limit)) || scenario_fail "\"$statement\" took $took ms (limit $limit ms)"
done
kill "$silent_pid" 2>/dev/null || true

log "Scenario: 16 connections insert, scan and import for 30 s on Kafka, with a scheduled job"
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

log "Scenario: failover on a 3-node Kafka cluster: a partition's leader stops (SIGTERM, SIGKILL) during a scan, an INSERT and a 1-second import job"
# Topics with 3 replicas, 2 of them in sync for a write to count; a node stops while a
# statement uses the leader of partition 0, and comes back before the next case. A scan
# either returns exactly the topic or fails with an ERROR, never other rows; INSERT's
# idempotent producer leaves each row once in the topic; the import job ends equal to
# the topic.
start_kafka_cluster 3
failover_topic() { # failover_topic NAME
    KAFKA_BROKERS="$KAFKA_CLUSTER_BROKERS" create_topic "$1" 3 --replication-factor 3 --config min.insync.replicas=2
}
leader_of_partition_0() { # leader_of_partition_0 TOPIC: its node id
    "$KAFKA_TOOL" leaders --brokers "$KAFKA_CLUSTER_BROKERS" --topic "$1" | awk -F'\t' '$1 == 0 { print $2 }'
}
# stop_leader_during TOPIC SIGNAL PID: stops partition 0's leader 0.5 s into the statement
# run by PID, then restarts it once the statement ended; sets STOPPED_DURING (whether
# the statement was still running when the node went down).
stop_leader_during() {
    local node
    node="$(leader_of_partition_0 "$1")"
    sleep 0.5
    STOPPED_DURING=no
    kill -0 "$3" 2>/dev/null && STOPPED_DURING=yes
    stop_kafka_node "$node" "$2"
    wait "$3" || true
    restart_kafka_node "$node"
}
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_scheduler <<SQL
CREATE SERVER cluster FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$KAFKA_CLUSTER_BROKERS', timeout_ms '30000');
CREATE USER MAPPING FOR PUBLIC SERVER cluster;
SQL

failover_topic failover_scan
rows 1 500000 >"$SERVICE_DIR/failover.csv"
"$KAFKA_TOOL" produce --brokers "$KAFKA_CLUSTER_BROKERS" --topic failover_scan --round-robin --file "$SERVICE_DIR/failover.csv" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_scheduler -c "CREATE FOREIGN TABLE failover_scan (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text) SERVER cluster OPTIONS (topic 'failover_scan')"
reference=$("$KAFKA_TOOL" count --brokers "$KAFKA_CLUSTER_BROKERS" --topic failover_scan | cut -d' ' -f1)
for signal in TERM KILL; do
    psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT count(*), count(DISTINCT (part, offs)), sum(n) FROM failover_scan" \
        >"$SERVICE_DIR/failover_scan.out" 2>&1 &
    stop_leader_during failover_scan "$signal" $!
    if grep -q ERROR "$SERVICE_DIR/failover_scan.out"; then
        echo "full scan, leader stopped with SIG$signal (during the scan: $STOPPED_DURING): failed: $(grep -A1 ERROR "$SERVICE_DIR/failover_scan.out" | paste -sd' ')"
    else
        read -r rows distinct sum <"$SERVICE_DIR/failover_scan.out"
        echo "full scan, leader stopped with SIG$signal (during the scan: $STOPPED_DURING): $rows rows, $distinct distinct, sum $sum; the topic holds $reference"
        [[ "$rows" == "$reference" && "$distinct" == "$reference" && "$sum" == 125000250000 ]] || scenario_fail "a scan across a failover returned other rows than the topic's"
    fi
done

for signal in TERM KILL; do
    failover_topic "failover_insert_$signal"
    psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_scheduler -c "CREATE FOREIGN TABLE failover_insert_$signal (n int, t text) SERVER cluster OPTIONS (topic 'failover_insert_$signal')"
    psql -X -d kafka_fdw_scheduler -c "INSERT INTO failover_insert_$signal SELECT i, 'inserted ' || i FROM generate_series(1, 100000) i" \
        >"$SERVICE_DIR/failover_insert.out" 2>&1 &
    stop_leader_during "failover_insert_$signal" "$signal" $!
    read -r rows distinct low high <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT count(*), count(DISTINCT n), min(n), max(n) FROM failover_insert_$signal")"
    reference=$("$KAFKA_TOOL" count --brokers "$KAFKA_CLUSTER_BROKERS" --topic "failover_insert_$signal" | cut -d' ' -f1)
    echo "INSERT of 100000 rows, leader stopped with SIG$signal (during the INSERT: $STOPPED_DURING): $(head -1 "$SERVICE_DIR/failover_insert.out"); the topic holds $rows messages ($reference for kafka-tool), $distinct distinct, $low..$high"
    grep -q '^INSERT 0 100000$' "$SERVICE_DIR/failover_insert.out" || scenario_fail "the INSERT failed across a failover: $(cat "$SERVICE_DIR/failover_insert.out")"
    [[ "$rows" == 100000 && "$distinct" == 100000 && "$reference" == 100000 && "$low" == 1 && "$high" == 100000 ]] \
        || scenario_fail "the INSERT left duplicates or gaps across a failover"
done

for signal in TERM KILL; do
    failover_topic "failover_job_$signal"
    psql -X -q -v ON_ERROR_STOP=1 -d kafka_fdw_scheduler <<SQL
CREATE FOREIGN TABLE failover_job_$signal (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER cluster OPTIONS (topic 'failover_job_$signal');
CREATE TABLE failover_target_$signal (part int, offs bigint, n int, t text);
SELECT kafka_fdw.start_import('failover_job_$signal', 'failover_target_$signal') \g /dev/null
SQL
    # 20 batches of 1000 messages, one every 0.2 s, while the job imports every second.
    for batch in $(seq 0 19); do
        rows $((batch * 1000 + 1)) $((batch * 1000 + 1000))
        sleep 0.2
    done | "$KAFKA_TOOL" produce --brokers "$KAFKA_CLUSTER_BROKERS" --topic "failover_job_$signal" --round-robin >/dev/null &
    producer=$!
    sleep 1.5
    stop_leader_during "failover_job_$signal" "$signal" "$producer"
    started=$SECONDS
    reference=$("$KAFKA_TOOL" count --brokers "$KAFKA_CLUSTER_BROKERS" --topic "failover_job_$signal" | cut -d' ' -f1)
    while ((SECONDS - started < 60)); do
        read -r imported distinct lag <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT count(*), count(DISTINCT (part, offs)), (SELECT sum(lag) FROM kafka_fdw.import_jobs_status WHERE target = 'failover_target_$signal'::regclass) FROM failover_target_$signal")"
        [[ "$imported" == "$reference" && "$lag" == 0 ]] && break
        sleep 0.5
    done
    read -r topic_messages topic_distinct <<<"$(psql -X -A -t -F ' ' -d kafka_fdw_scheduler -c "SELECT count(*), count(DISTINCT n) FROM failover_job_$signal")"
    failed_runs=$(grep -c "kafka_fdw import job .*failover_target_$signal.* failed" "$SERVICE_DIR/postgres.log" || true)
    echo "1-second import job, leader stopped with SIG$signal (while producing: $STOPPED_DURING): the topic holds $reference messages ($topic_distinct distinct values), the target $imported rows, $distinct distinct; $failed_runs job runs failed on the way; caught up $((SECONDS - started)) s after the node came back"
    [[ "$imported" == "$reference" && "$distinct" == "$reference" && "$topic_messages" == "$reference" ]] \
        || scenario_fail "the import job lost or duplicated messages across a failover"
    psql -X -q -d kafka_fdw_scheduler -c "SELECT kafka_fdw.stop_import('failover_job_$signal', 'failover_target_$signal')" >/dev/null
done
stop_kafka_cluster

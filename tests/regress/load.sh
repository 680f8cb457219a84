# Creates and fills the topics the SQL regression tests read. Sourced by tests/run.sh
# after the brokers are up (needs create_topic, KAFKA_TOOL, KAFKA_BROKERS, MOCK_BROKERS,
# SECURE_ADMIN_BROKERS, SERVICE_DIR).
# Test data goes in through kafka-tool, never through the FDW under test.

REGRESS_DIR="$REPO_ROOT/tests/regress"
# The server reads COPY files as user postgres: give it copies it can read.
KAFKA_FDW_REGRESS_DATA="$SERVICE_DIR/regress-data"
mkdir -p "$KAFKA_FDW_REGRESS_DATA"
cp "$REGRESS_DIR"/data/*.csv "$REGRESS_DIR"/data/debezium_*.avsc "$KAFKA_FDW_REGRESS_DATA/"
# 5000 known rows for counting: i, "row i", a date and a timestamp.
seq 1 5000 | awk '{ printf "%d,row %d,2020-01-%02d,2020-01-01 00:%02d:%02d\n", $1, $1, $1 % 28 + 1, $1 % 60, $1 % 60 }' \
    >"$KAFKA_FDW_REGRESS_DATA/numbers.csv"
seq 1 1000 | awk '{ printf "%d,first %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/import_first.csv"
seq 1001 1500 | awk '{ printf "%d,second %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/import_second.csv"
seq 1501 1800 | awk '{ printf "%d,third %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/import_third.csv"
chmod -R a+rX "$KAFKA_FDW_REGRESS_DATA"
export KAFKA_FDW_REGRESS_DATA

produce() { # produce TOPIC FILE: line i goes to partition i mod (partition count)
    "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic "$1" --round-robin --file "$2" >/dev/null
}

create_topic contrib_regress_csv 4
produce contrib_regress_csv "$KAFKA_FDW_REGRESS_DATA/numbers.csv"
create_topic regress_values 4
produce regress_values "$KAFKA_FDW_REGRESS_DATA/values.csv"
create_topic regress_empty 4
create_topic regress_mistyped 1
produce regress_mistyped "$KAFKA_FDW_REGRESS_DATA/mistyped.csv"

# Keys, headers and timestamps: message i has key "key-i" and timestamp
# 2023-11-14 22:13:20 UTC + i seconds; two more messages have neither key nor headers.
seq 0 9 | awk '{ printf "key-%d|name %d,%d\n", $1, $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/keyed.txt"
create_topic regress_meta 2
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_meta --round-robin \
    --file "$KAFKA_FDW_REGRESS_DATA/keyed.txt" --key-delimiter '|' \
    --header source=kafka-tool --header trace=abc \
    --timestamp-start 1700000000000 --timestamp-step 1000 >/dev/null
printf 'plain 1,101\nplain 2,102\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_meta \
    --partition 0 --timestamp-start 1700000100000 >/dev/null

# Compressed batches of every codec librdkafka writes.
for codec in gzip snappy lz4 zstd; do
    create_topic "regress_$codec" 2
    "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic "regress_$codec" --round-robin \
        --compression "$codec" --file "$KAFKA_FDW_REGRESS_DATA/numbers.csv" >/dev/null
done

# Bad messages among good ones (one partition, so offsets are line numbers - 1).
{
    echo '91,correct line,2015-01-01,2015-01-01 01:31:00'
    echo '131,additional data,2015-01-01,2015-01-01 02:11:00,extra field'
    echo '301,missing fields'
    echo '371,invalid date,2015-13-45,2015-01-01 06:11:00'
    echo '401,"unterminated quote,2015-01-01,2015-01-01 06:41:00'
    echo '999999999999999,out of range integer,2015-01-01,2015-01-01 07:11:00'
    printf '521,invalid UTF-8 \xff\xfe here,2015-01-01,2015-01-01 08:41:00\n'
    echo '601,"quoted, fine",2015-01-01,2015-01-01 10:01:00'
} >"$KAFKA_FDW_REGRESS_DATA/junk.csv"
create_topic regress_junk 1
produce regress_junk "$KAFKA_FDW_REGRESS_DATA/junk.csv"
{
    echo '{"int_val": 1, "text_val": "correct", "date_val": "2015-01-12", "nested": {"deep": {"n": 7}}, "list": [1, "two", null]}'
    echo '{"int_val": 2, "text_val": "extra key", "date_val": "2015-01-12", "more_val": "too much"}'
    echo '{"int_val": 3, "text_val": "invalid date", "date_val": "2015-13-13"}'
    echo '{"int_val": 4, "text_val": "malformed json", "date_val": "2015-01-12"'
    echo '["an", "array", "not", "an", "object"]'
    echo '{"int_val": 99999999999, "text_val": "out of range", "date_val": "2015-01-12"}'
    printf '{"int_val": 7, "text_val": "invalid UTF-8 \xff", "date_val": "2015-01-12"}\n'
    echo '{"int_val": 8, "text_val": null, "date_val": null, "nested": {"deep": {"n": "8"}}}'
} >"$KAFKA_FDW_REGRESS_DATA/junk.json"
create_topic regress_json 1
produce regress_json "$KAFKA_FDW_REGRESS_DATA/junk.json"
# Garbage, the same every run: 1000 lines of base64 text and 1000 of random bytes.
python3 - "$KAFKA_FDW_REGRESS_DATA/garbage.txt" <<'PY'
import base64, random, sys
rng = random.Random(20261125)
with open(sys.argv[1], "wb") as out:
    for _ in range(1000):
        out.write(base64.b64encode(rng.randbytes(75)) + b"\n")
    for _ in range(1000):
        out.write(rng.randbytes(100).replace(b"\n", b" ").replace(b"\r", b" ") + b"\n")
PY
create_topic regress_garbage 1
produce regress_garbage "$KAFKA_FDW_REGRESS_DATA/garbage.txt"

# Empty topics the producer tests write to (INSERT and COPY go through the FDW here,
# and are read back through it and through kafka-tool).
create_topic regress_insert 4
create_topic regress_insert_json 2
create_topic regress_insert_meta 1
create_topic regress_copy 2
create_topic regress_copy_in 1
"$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" create-topic regress_faults 1
# The statistics' test (stats.sql) writes and reads its own topics.
create_topic regress_stats 1
"$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" create-topic regress_stats_faults 1
# A topic whose group commits import.sql has the mock cluster refuse.
"$KAFKA_TOOL" mock-ctl --control "$MOCK_CONTROL" create-topic regress_group_faults 1

# Tables over many topics (topics.sql): three topics with data, an empty one, and two
# that routed INSERTs write to. Messages are "n,<topic letter> n".
create_topic regress_many_a 2
seq 1 10 | awk '{ printf "%d,a %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/many_a.csv"
produce regress_many_a "$KAFKA_FDW_REGRESS_DATA/many_a.csv"
create_topic regress_many_b 1
seq 11 15 | awk '{ printf "%d,b %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/many_b.csv"
produce regress_many_b "$KAFKA_FDW_REGRESS_DATA/many_b.csv"
create_topic regress_many_c 3
seq 16 30 | awk '{ printf "%d,c %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/many_c.csv"
produce regress_many_c "$KAFKA_FDW_REGRESS_DATA/many_c.csv"
create_topic regress_many_d 1
create_topic regress_routed_1 1
create_topic regress_routed_2 2

# Imports: 1000 rows now; more are produced during the test.
create_topic regress_import 4
produce regress_import "$KAFKA_FDW_REGRESS_DATA/import_first.csv"

# Imports straight into COPY's CSV parser (import_copy.sql): messages COPY would read
# otherwise as they are (line breaks, `\.`, a byte-order mark, no value...), and bad ones.
create_topic regress_import_copy 2
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_import_copy --round-robin --unescape --tombstone TOMBSTONE \
    --file "$KAFKA_FDW_REGRESS_DATA/import_copy.csv" >/dev/null
create_topic regress_import_copy_bad 1
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_import_copy_bad --round-robin --unescape \
    --file "$KAFKA_FDW_REGRESS_DATA/import_copy_bad.csv" >/dev/null

# Privileges and stored offsets (privileges.sql): 100 messages over 2 partitions, and a
# second topic of 30 for switching the table's topic. regress_recreated is deleted and
# created again with fewer messages during the test.
seq 1 100 | awk '{ printf "%d,priv %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/privileges.csv"
seq 1001 1030 | awk '{ printf "%d,other %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/privileges_other.csv"
seq 2001 2010 | awk '{ printf "%d,recreated %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/recreated.csv"
chmod a+r "$KAFKA_FDW_REGRESS_DATA"/*.csv
create_topic regress_privileges 2
produce regress_privileges "$KAFKA_FDW_REGRESS_DATA/privileges.csv"
create_topic regress_privileges_other 2
produce regress_privileges_other "$KAFKA_FDW_REGRESS_DATA/privileges_other.csv"
create_topic regress_recreated 2
produce regress_recreated "$KAFKA_FDW_REGRESS_DATA/privileges.csv"

# Security (security.sql): 1000 rows over 2 partitions on the broker that wants
# SASL/SCRAM, which alice may read.
grant() { # grant USER OPERATION RESOURCE_TYPE RESOURCE
    "$KAFKA_TOOL" acl --brokers "$SECURE_ADMIN_BROKERS" --principal "User:$1" --operation "$2" --resource-type "$3" --resource "$4"
}
seq 1 1000 | awk '{ printf "%d,secret %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/secure.csv"
KAFKA_BROKERS="$SECURE_ADMIN_BROKERS" create_topic secure_topic 2
"$KAFKA_TOOL" produce --brokers "$SECURE_ADMIN_BROKERS" --topic secure_topic --round-robin \
    --file "$KAFKA_FDW_REGRESS_DATA/secure.csv" >/dev/null
grant alice read topic secure_topic

# ACLs (acls.sql): 20 rows over 2 partitions on the same broker, and for each Kafka user
# the ACLs it has (what it lacks is the test).
seq 1 20 | awk '{ printf "%d,acl %d\n", $1, $1 }' >"$KAFKA_FDW_REGRESS_DATA/acl.csv"
KAFKA_BROKERS="$SECURE_ADMIN_BROKERS" create_topic acl_topic 2
"$KAFKA_TOOL" produce --brokers "$SECURE_ADMIN_BROKERS" --topic acl_topic --round-robin \
    --file "$KAFKA_FDW_REGRESS_DATA/acl.csv" >/dev/null
grant no_read describe topic acl_topic
grant no_write read topic acl_topic
grant no_write idempotent_write cluster kafka-cluster
grant no_idempotent read topic acl_topic
grant no_txn_id write topic acl_topic

# Real topic shapes (shapes.sql), made by the broker itself:
# - regress_compacted (cleanup.policy=compact; a new segment every 100 ms, so each
#   round below is a segment of its own; the cleaner takes any dirty segment): keys
#   0..99 written four times, the third round deleting every tenth key (tombstones), the
#   fourth rewriting the even keys but every twentieth; then one more message, so the
#   last round's segment is closed too. Once cleaned: the odd keys' third values, five
#   tombstones and the even keys' fourth values, with gaps between their offsets.
create_topic regress_compacted 1 --config cleanup.policy=compact --config segment.ms=100 \
    --config min.cleanable.dirty.ratio=0.01 --config min.compaction.lag.ms=0
compaction_round() { # compaction_round ROUND: "key|key,round" lines, or tombstones
    seq 0 99 | awk -v round="$1" '
        round == 3 && $1 % 10 == 0 { printf "%d|DELETE\n", $1; next }
        round == 4 && ($1 % 2 == 1 || $1 % 20 == 0) { next }
        { printf "%d|%d,%d\n", $1, $1, round }'
}
for round in 1 2 3 4; do
    compaction_round "$round" | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_compacted \
        --partition 0 --key-delimiter '|' --tombstone DELETE >/dev/null
    sleep 0.3
done
echo 'end|1000,5' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_compacted --partition 0 \
    --key-delimiter '|' >/dev/null
# 346 messages went in; 101 remain once the cleaner has been (within a few seconds).
for _ in $(seq 300); do
    [[ "$("$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_compacted | cut -d' ' -f1)" == 101 ]] && break
    sleep 0.2
done
# - regress_wide: 100 partitions, 100 messages each.
create_topic regress_wide 100
seq 1 10000 | awk '{ printf "%d,wide %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" \
    --topic regress_wide --round-robin >/dev/null
# - regress_append_time (message.timestamp.type=LogAppendTime): three batches of 30
#   messages a second or more apart; the broker stamps them, whatever the producer says
#   (here: 2017).
create_topic regress_append_time 3 --config message.timestamp.type=LogAppendTime
for batch in 0 1 2; do
    seq $((batch * 30 + 1)) $((batch * 30 + 30)) | awk -v batch="$batch" '{ printf "%d,batch %d\n", $1, batch }' |
        "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_append_time --round-robin \
            --timestamp-start 1500000000000 >/dev/null
    sleep 1.1
done

# The topics of the Schema Registry files (avro.sql, protobuf.sql, keys.sql).
source "$REGRESS_DIR/load_registry.sh"

# Creates and fills the topics the SQL regression tests read. Sourced by tests/run.sh
# after the broker is up (needs create_topic, KAFKA_TOOL, TANSU_BROKERS, SERVICE_DIR).
# Test data goes in through kafka-tool, never through the FDW under test.

REGRESS_DIR="$REPO_ROOT/tests/regress"
# The server reads COPY files as user postgres: give it copies it can read.
KAFKA_FDW_REGRESS_DATA="$SERVICE_DIR/regress-data"
mkdir -p "$KAFKA_FDW_REGRESS_DATA"
cp "$REGRESS_DIR"/data/*.csv "$KAFKA_FDW_REGRESS_DATA/"
# 5000 known rows for counting: i, "row i", a date and a timestamp.
seq 1 5000 | awk '{ printf "%d,row %d,2020-01-%02d,2020-01-01 00:%02d:%02d\n", $1, $1, $1 % 28 + 1, $1 % 60, $1 % 60 }' \
    >"$KAFKA_FDW_REGRESS_DATA/numbers.csv"
chmod -R a+rX "$KAFKA_FDW_REGRESS_DATA"
export KAFKA_FDW_REGRESS_DATA

produce() { # produce TOPIC FILE: line i goes to partition i mod (partition count)
    "$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic "$1" --round-robin --file "$2" >/dev/null
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
"$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic regress_meta --round-robin \
    --file "$KAFKA_FDW_REGRESS_DATA/keyed.txt" --key-delimiter '|' \
    --header source=kafka-tool --header trace=abc \
    --timestamp-start 1700000000000 --timestamp-step 1000 >/dev/null
printf 'plain 1,101\nplain 2,102\n' | "$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic regress_meta \
    --partition 0 --timestamp-start 1700000100000 >/dev/null

# Compressed batches: tansu serves gzip, lz4 and zstd; snappy is read from the mock
# cluster (tansu cannot serve it).
for codec in gzip lz4 zstd; do
    create_topic "regress_$codec" 2
    "$KAFKA_TOOL" produce --brokers "$TANSU_BROKERS" --topic "regress_$codec" --round-robin \
        --compression "$codec" --file "$KAFKA_FDW_REGRESS_DATA/numbers.csv" >/dev/null
done
"$KAFKA_TOOL" produce --brokers "$MOCK_BROKERS" --topic regress_snappy --round-robin \
    --compression snappy --file "$KAFKA_FDW_REGRESS_DATA/numbers.csv" >/dev/null

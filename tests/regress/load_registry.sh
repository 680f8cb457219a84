# Creates and fills the topics of the Schema Registry files (avro.sql, protobuf.sql,
# keys.sql), registering their schemas in the registry at KAFKA_REGISTRY_URL (and
# KAFKA_AUTH_REGISTRY_URL, which wants credentials). Sourced by tests/regress/load.sh,
# and by tests/run.sh again for the pass against Apicurio Registry (on a broker of its
# own); needs what load.sh needs, and load.sh's REGRESS_DIR and KAFKA_FDW_REGRESS_DATA.

# Avro (avro.sql): version 1 then version 2 of one schema in one topic, framed for
# kafka-tool's schema registry (ids 1 and 2); bare Avro of version 2; and bad messages
# in one partition: good (v2, id 2), plain text, an unknown schema id, a record cut
# inside a string, a record cut inside a number, good. A second registry wants
# credentials and holds the same schemas under the same ids.
cp "$REGRESS_DIR"/data/avro_* "$KAFKA_FDW_REGRESS_DATA/"
chmod a+r "$KAFKA_FDW_REGRESS_DATA"/avro_*
produce_avro() { # produce_avro TOPIC SCHEMA JSONLINES [kafka-tool options…]
    local topic="$1" schema="$2" lines="$3"
    shift 3
    "$KAFKA_TOOL" produce-avro --brokers "$KAFKA_BROKERS" --topic "$topic" \
        --schema-file "$REGRESS_DIR/data/$schema" "$@" <"$REGRESS_DIR/data/$lines" >/dev/null
}
create_topic regress_avro 2
produce_avro regress_avro avro_event_v1.avsc avro_v1.jsonl --registry "$KAFKA_REGISTRY_URL"
produce_avro regress_avro avro_event_v2.avsc avro_v2.jsonl --registry "$KAFKA_REGISTRY_URL"
# Schema evolution with defaults: version 1 messages, then version 2 (new fields with
# defaults, the subject's latest) messages, in one topic.
create_topic regress_avro_evolve 1
produce_avro regress_avro_evolve avro_evolve_v1.avsc avro_evolve_v1.jsonl --registry "$KAFKA_REGISTRY_URL" --partition 0
produce_avro regress_avro_evolve avro_evolve_v2.avsc avro_evolve_v2.jsonl --registry "$KAFKA_REGISTRY_URL" --partition 0
create_topic regress_avro_bare 1
produce_avro regress_avro_bare avro_event_v2.avsc avro_v2.jsonl
create_topic regress_avro_auth 1
for version in 1 2; do
    produce_avro regress_avro_auth "avro_event_v$version.avsc" "avro_v$version.jsonl" \
        --registry "$KAFKA_AUTH_REGISTRY_URL" --user reader --password secret
done
create_topic regress_avro_junk 1
# v2 records by hand: id 7 (zigzag 0e), name null (00), email null (00), point (1, 1)
# (02 02); id 8 with name "hell" cut after "he"; id 9 cut before point.y.
printf '\x00\x00\x00\x00\x02\x0e\x00\x00\x02\x02\nnot avro at all\n\x00\x00\x00\x03\xe7\x0e\x00\x00\x02\x02\n\x00\x00\x00\x00\x02\x10\x02\x08he\n\x00\x00\x00\x00\x02\x12\x00\x00\x02\n\x00\x00\x00\x00\x02\x14\x00\x00\x04\x04\n' \
    >"$KAFKA_FDW_REGRESS_DATA/avro_junk.bin"
"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_avro_junk --partition 0 \
    --file "$KAFKA_FDW_REGRESS_DATA/avro_junk.bin" >/dev/null

# Protobuf (protobuf.sql): three orders of protobuf_order.proto in partition 0 (its
# import protobuf_common.proto registered first and referenced, as Confluent's
# serializer does) and one message of the file's other type, Audit, in partition 1.
# protobuf.sql makes its bad messages itself, from the header of a good one.
cp "$REGRESS_DIR"/data/protobuf_* "$KAFKA_FDW_REGRESS_DATA/"
chmod a+r "$KAFKA_FDW_REGRESS_DATA"/protobuf_*
produce_protobuf() { # produce_protobuf TOPIC MESSAGE [kafka-tool options…] <JSONLINES
    local topic="$1" message="$2"
    shift 2
    "$KAFKA_TOOL" produce-protobuf --brokers "$KAFKA_BROKERS" --topic "$topic" --message "$message" \
        --schema-file "$REGRESS_DIR/data/protobuf_order.proto" --registry "$KAFKA_REGISTRY_URL" "$@" >/dev/null
}
create_topic regress_protobuf 2
produce_protobuf regress_protobuf shop.Order --partition 0 <"$REGRESS_DIR/data/protobuf_orders.jsonl"
echo '{"who": "auditor"}' | produce_protobuf regress_protobuf shop.Audit --partition 1
create_topic regress_protobuf_junk 1

# Producing Avro and Protobuf (avro.sql, protobuf.sql): empty topics for INSERT and
# COPY, whose value subjects hold the schemas they write with (registered by kafka-tool
# producing nothing).
create_topic regress_avro_out 2
"$KAFKA_TOOL" produce-avro --brokers "$KAFKA_BROKERS" --topic regress_avro_out \
    --schema-file "$REGRESS_DIR/data/avro_event_v1.avsc" --registry "$KAFKA_REGISTRY_URL" </dev/null >/dev/null
create_topic regress_avro_bare_out 1
create_topic regress_protobuf_out 1
# Topics without subjects, for auto_register.
create_topic regress_avro_auto 1
create_topic regress_protobuf_auto 1
# keys.sql: keys with fields (JSON, and Avro/Protobuf whose schemas auto_register makes).
create_topic regress_keys_json 1
create_topic regress_keys_json_scalar 1
create_topic regress_keys_avro 1
create_topic regress_keys_avro_long 1
create_topic regress_keys_protobuf 1
produce_protobuf regress_protobuf_out shop.Order </dev/null

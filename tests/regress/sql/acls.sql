-- Kafka's ACLs (StandardAuthorizer, on the secure broker tests/run.sh starts): a user
-- mapping whose Kafka user lacks an ACL gets an ERROR with SQLSTATE 42501 naming the
-- topic (or transactional id), the operation Kafka refused and the principal, at once:
-- not a timeout (timeout_ms is 10 s; each refusal comes well within 5 s). Each Kafka
-- user lacks one thing and has what the statement before it needs
-- (tests/regress/load.sh grants the ACLs):
--   no_describe    nothing at all
--   no_read        DESCRIBE on the topic
--   no_write       READ on the topic, IDEMPOTENT_WRITE on the cluster
--   no_idempotent  READ on the topic (and no WRITE anywhere, which would imply
--                  IDEMPOTENT_WRITE since Kafka 3.0)
--   no_txn_id      WRITE on the topic, nothing on transactional ids
\getenv sasl_brokers KAFKA_SECURE_SASL_BROKERS
CREATE SERVER acl_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (
    brokers :'sasl_brokers', timeout_ms '10000', "security.protocol" 'SASL_PLAINTEXT', "sasl.mechanism" 'SCRAM-SHA-256');
CREATE SERVER acl_txn_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (
    brokers :'sasl_brokers', timeout_ms '10000', "security.protocol" 'SASL_PLAINTEXT', "sasl.mechanism" 'SCRAM-SHA-256',
    transactional 'true');
CREATE FOREIGN TABLE acl_numbers (part int OPTIONS (partition 'true'), n int, t text) SERVER acl_server OPTIONS (topic 'acl_topic');
CREATE FOREIGN TABLE acl_numbers_txn (part int OPTIONS (partition 'true'), n int, t text) SERVER acl_txn_server OPTIONS (topic 'acl_topic');
-- This session's own user is Kafka's super user admin.
CREATE USER MAPPING FOR CURRENT_USER SERVER acl_server OPTIONS ("sasl.username" 'admin', "sasl.password" 'admin-secret');
CREATE ROLE no_describe;
CREATE ROLE no_read;
CREATE ROLE no_write;
CREATE ROLE no_idempotent;
CREATE ROLE no_txn_id;
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['no_describe', 'no_read', 'no_write', 'no_idempotent', 'no_txn_id'] LOOP
        EXECUTE format('CREATE USER MAPPING FOR %I SERVER acl_server OPTIONS ("sasl.username" %L, "sasl.password" %L)', name, name, name || '-secret');
        EXECUTE format('CREATE USER MAPPING FOR %I SERVER acl_txn_server OPTIONS ("sasl.username" %L, "sasl.password" %L)', name, name, name || '-secret');
        EXECUTE format('GRANT SELECT, INSERT ON acl_numbers, acl_numbers_txn TO %I', name);
        EXECUTE format('GRANT USAGE ON SCHEMA kafka_fdw TO %I', name);
    END LOOP;
END $$;

-- The refusal, with broker addresses and the digits of transactional ids masked, and
-- whether it came within 5 s.
CREATE FUNCTION pg_temp.refusal(query text, OUT state text, OUT message text, OUT detail text, OUT hint text, OUT fast boolean)
LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    EXECUTE query;
    message := 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    fast := clock_timestamp() - started < interval '5 seconds';
    message := regexp_replace(message, 'kafka_fdw-[0-9-]+', 'kafka_fdw-N', 'g');
    detail := regexp_replace(detail, 'kafka_fdw-[0-9-]+', 'kafka_fdw-N', 'g');
    detail := regexp_replace(detail, '\S+://127\.0\.0\.1:\d+/\S+: ', '', 'g');
END $$;
\x on

-- Without DESCRIBE the topic cannot even be looked up.
SET ROLE no_describe;
SELECT * FROM pg_temp.refusal('SELECT count(*) FROM acl_numbers');
SELECT * FROM pg_temp.refusal($$SELECT * FROM kafka_fdw.watermarks('acl_numbers')$$);
RESET ROLE;

-- DESCRIBE shows the watermarks; reading messages needs READ.
SET ROLE no_read;
SELECT * FROM kafka_fdw.watermarks('acl_numbers') ORDER BY partition;
SELECT * FROM pg_temp.refusal('SELECT count(*) FROM acl_numbers');
RESET ROLE;

-- READ reads; producing needs WRITE.
SET ROLE no_write;
SELECT count(*), sum(n) FROM acl_numbers;
SELECT * FROM pg_temp.refusal($$INSERT INTO acl_numbers (part, n, t) VALUES (0, 1, 'refused')$$);
RESET ROLE;

-- Without WRITE anywhere (nor IDEMPOTENT_WRITE on the cluster), the idempotent producer
-- is refused before it sends anything.
SET ROLE no_idempotent;
SELECT count(*), sum(n) FROM acl_numbers;
SELECT * FROM pg_temp.refusal($$INSERT INTO acl_numbers (part, n, t) VALUES (0, 1, 'refused')$$);
RESET ROLE;

-- WRITE on the topic produces without transactions; a transactional table also needs
-- WRITE on its transactional id.
SET ROLE no_txn_id;
INSERT INTO acl_numbers (part, n, t) VALUES (0, 1001, 'allowed');
SELECT * FROM pg_temp.refusal($$INSERT INTO acl_numbers_txn (part, n, t) VALUES (0, 1, 'refused')$$);
RESET ROLE;
\x off

-- Nothing refused reached the topic: its 20 messages and the one allowed.
SELECT count(*), count(*) FILTER (WHERE t = 'refused') AS refused FROM acl_numbers;

DROP SERVER acl_server, acl_txn_server CASCADE;
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['no_describe', 'no_read', 'no_write', 'no_idempotent', 'no_txn_id'] LOOP
        EXECUTE format('REVOKE USAGE ON SCHEMA kafka_fdw FROM %I', name);
        EXECUTE format('DROP ROLE %I', name);
    END LOOP;
END $$;

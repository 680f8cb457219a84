-- Security, following postgres_fdw: librdkafka properties in servers and user mappings,
-- who may set which, credentials that other roles cannot read, and SASL/SCRAM over TLS
-- against a real broker (tansu behind stunnel, started by tests/run.sh).
\getenv brokers KAFKA_BROKERS
\getenv secure_brokers KAFKA_SECURE_BROKERS
\getenv secure_ca_file KAFKA_SECURE_CA
\getenv untrusted_ca_file KAFKA_UNTRUSTED_CA

CREATE ROLE kafka_owner;
CREATE ROLE kafka_other;
GRANT USAGE ON FOREIGN DATA WRAPPER kafka_fdw TO kafka_owner;

-- Names are checked against librdkafka's own list of properties.
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', "no.such.property" 'x');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', "test.mock.num.brokers" '3');
-- What kafka_fdw sets itself is refused for everyone, superusers included.
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', "group.id" 'mine');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', "enable.partition.eof" 'false');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', "bootstrap.servers" 'elsewhere:9092');

-- A role that is not a superuser may set harmless properties…
SET ROLE kafka_owner;
CREATE SERVER owned FOREIGN DATA WRAPPER kafka_fdw OPTIONS (
    brokers :'brokers', "client.id" 'mine', "fetch.max.bytes" '1048576',
    "message.timeout.ms" '5000', "security.protocol" 'plaintext', "sasl.mechanism" 'PLAIN');
-- …and no property that loads code, runs commands, reaches other services, or reads or
-- writes the server's files, in a server or in a user mapping.
CREATE FUNCTION pg_temp.try_properties(target text, properties text[]) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    property text;
BEGIN
    FOREACH property IN ARRAY properties LOOP
        BEGIN
            EXECUTE format('ALTER %s OPTIONS (ADD %I %L)', target, property, '/tmp/x');
            RETURN NEXT property || ': accepted';
        EXCEPTION WHEN insufficient_privilege THEN
            RETURN NEXT property || ': ' || SQLERRM;
        END;
    END LOOP;
END $$;
CREATE TEMP TABLE dangerous (name text);
GRANT SELECT ON dangerous TO PUBLIC;
INSERT INTO dangerous VALUES
    ('plugin.library.paths'), ('sasl.kerberos.kinit.cmd'), ('sasl.kerberos.keytab'),
    ('ssl.ca.location'), ('ssl.certificate.location'), ('ssl.key.location'), ('ssl.crl.location'),
    ('ssl.keystore.location'), ('ssl.keystore.password'), ('ssl.engine.location'), ('ssl.engine.id'),
    ('ssl.providers'), ('ssl.ca.certificate.stores'), ('debug'), ('internal.termination.signal'),
    ('sasl.oauthbearer.method'), ('sasl.oauthbearer.token.endpoint.url'),
    ('sasl.oauthbearer.assertion.file'), ('sasl.oauthbearer.assertion.private.key.file'),
    ('https.ca.location'), ('socket.connection.setup.timeout.ms' /* harmless: accepted */);
SELECT pg_temp.try_properties('SERVER owned', array_agg(name)) FROM dangerous;
CREATE USER MAPPING FOR kafka_owner SERVER owned OPTIONS ("ssl.key.location" '/etc/ssl/private/db.key');
CREATE USER MAPPING FOR kafka_owner SERVER owned
    OPTIONS ("sasl.username" 'owner', "sasl.password" 'owner-secret');
SELECT pg_temp.try_properties('USER MAPPING FOR kafka_owner SERVER owned', ARRAY['sasl.kerberos.kinit.cmd', 'debug']);
ALTER SERVER owned OPTIONS (DROP "socket.connection.setup.timeout.ms");

-- A superuser may set every one of them (validation only looks the names up: nothing
-- is loaded or run here).
RESET ROLE;
SELECT pg_temp.try_properties('SERVER owned', array_agg(name)) FROM dangerous
WHERE name <> 'socket.connection.setup.timeout.ms';
-- The owner can no longer alter a server holding superuser-only properties…
SET ROLE kafka_owner;
ALTER SERVER owned OPTIONS (SET "client.id" 'changed');
-- …until a superuser removes them.
RESET ROLE;
DO $$
DECLARE
    property text;
BEGIN
    FOR property IN SELECT name FROM dangerous WHERE name <> 'socket.connection.setup.timeout.ms' LOOP
        EXECUTE format('ALTER SERVER owned OPTIONS (DROP %I)', property);
    END LOOP;
END $$;
SET ROLE kafka_owner;
ALTER SERVER owned OPTIONS (SET "client.id" 'changed');
SELECT option_name, option_value FROM pg_foreign_server, pg_options_to_table(srvoptions)
WHERE srvname = 'owned' AND option_name <> 'brokers';

-- Credentials in a user mapping are visible to its user and the server's owner, not to
-- other roles.
SELECT usename, umoptions FROM pg_user_mappings WHERE srvname = 'owned';
SET ROLE kafka_other;
SELECT usename, umoptions FROM pg_user_mappings WHERE srvname = 'owned';
SELECT umoptions FROM pg_user_mapping;
RESET ROLE;

-- SASL/SCRAM-SHA-512 over TLS. The CA certificate goes inline (ssl.ca.pem, which
-- anyone may set); credentials come from user mappings, which override the server's.
\set secure_ca `cat "$KAFKA_SECURE_CA"`
\set untrusted_ca `cat "$KAFKA_UNTRUSTED_CA"`
CREATE SERVER secure FOREIGN DATA WRAPPER kafka_fdw OPTIONS (
    brokers :'secure_brokers', timeout_ms '2000', "security.protocol" 'SASL_SSL',
    "sasl.mechanism" 'SCRAM-SHA-512', "ssl.ca.pem" :'secure_ca',
    "sasl.username" 'nobody', "sasl.password" 'nothing');
CREATE SERVER untrusted FOREIGN DATA WRAPPER kafka_fdw OPTIONS (
    brokers :'secure_brokers', timeout_ms '2000', "security.protocol" 'SASL_SSL',
    "sasl.mechanism" 'SCRAM-SHA-512', "ssl.ca.pem" :'untrusted_ca');
CREATE SERVER no_credentials FOREIGN DATA WRAPPER kafka_fdw OPTIONS (
    brokers :'secure_brokers', timeout_ms '2000', "security.protocol" 'SASL_SSL',
    "sasl.mechanism" 'SCRAM-SHA-512', "ssl.ca.pem" :'secure_ca');
CREATE USER MAPPING FOR kafka_owner SERVER secure OPTIONS ("sasl.username" 'alice', "sasl.password" 'wonderland');
CREATE USER MAPPING FOR kafka_other SERVER secure OPTIONS ("sasl.username" 'alice', "sasl.password" 'wrong');
CREATE USER MAPPING FOR CURRENT_USER SERVER secure;
CREATE USER MAPPING FOR CURRENT_USER SERVER untrusted OPTIONS ("sasl.username" 'alice', "sasl.password" 'wonderland');
CREATE USER MAPPING FOR CURRENT_USER SERVER no_credentials;
CREATE FOREIGN TABLE secure_numbers (n int, t text) SERVER secure OPTIONS (topic 'secure_topic');
CREATE FOREIGN TABLE untrusted_numbers (n int, t text) SERVER untrusted OPTIONS (topic 'secure_topic');
CREATE FOREIGN TABLE anonymous_numbers (n int, t text) SERVER no_credentials OPTIONS (topic 'secure_topic');
GRANT SELECT ON secure_numbers TO kafka_owner, kafka_other;

-- The right credentials read everything.
SET ROLE kafka_owner;
SELECT count(*), sum(n), min(t), max(t) FROM secure_numbers;
RESET ROLE;

-- Failures are clear ERRORs within the bounded wait (timeout_ms 2000): scans within
-- 3 s; a produce within 3.5 s, since librdkafka checks message timeouts once a second
-- (a message times out 2 to 3 s after it was queued). Broker addresses are masked.
CREATE FUNCTION pg_temp.failure(query text, OUT state text, OUT message text, OUT detail text, OUT bounded boolean)
LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
    bound interval := CASE WHEN query LIKE 'INSERT%' THEN interval '3.5 seconds' ELSE interval '3 seconds' END;
BEGIN
    EXECUTE query;
    message := 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
    bounded := clock_timestamp() - started < bound;
    message := regexp_replace(message, '"127\.0\.0\.1:\d+"', '"<brokers>"');
    detail := regexp_replace(detail, '\S+://127\.0\.0\.1:\d+/\S+: ', '', 'g');
    -- librdkafka reports a certificate it refuses from the handshake (with advice) or
    -- from the next read, whichever comes last: the same failure.
    detail := regexp_replace(detail, '(SSL handshake failed: )?(error:\w+:SSL routines::certificate verify failed)(: broker certificate could not be verified.*)?$', '\2');
END $$;
-- The user mapping's password overrides the server's, and is wrong.
SET ROLE kafka_other;
\x on
SELECT * FROM pg_temp.failure('SELECT count(*) FROM secure_numbers');
RESET ROLE;
-- The server's credentials, for a user mapping without any, are wrong too.
SELECT * FROM pg_temp.failure('SELECT count(*) FROM secure_numbers');
-- No credentials at all.
SELECT * FROM pg_temp.failure('SELECT count(*) FROM anonymous_numbers');
-- A certificate authority that did not sign the broker's certificate.
SELECT * FROM pg_temp.failure('SELECT count(*) FROM untrusted_numbers');
SELECT * FROM pg_temp.failure($$INSERT INTO untrusted_numbers VALUES (1, 'x')$$);

\x off
DROP SERVER secure, untrusted, no_credentials, owned CASCADE;
DROP FUNCTION pg_temp.try_properties;
DROP TABLE dangerous;
REVOKE USAGE ON FOREIGN DATA WRAPPER kafka_fdw FROM kafka_owner;
DROP ROLE kafka_owner, kafka_other;

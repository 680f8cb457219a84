-- kafka_fdw.import hands CSV messages straight to COPY FROM's own parser when that gives
-- exactly the rows the foreign table's scan gives, and goes through the scan (saying why
-- in a NOTICE) when it can't. The scan's rows are the reference throughout.
\getenv brokers KAFKA_BROKERS
CREATE SERVER copy_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER copy_server;

-- Messages COPY would read otherwise as they are: quoted delimiters and line breaks, a
-- trailing line break, CR LF, missing and extra fields, a byte-order mark, `\.` (COPY's
-- end-of-data marker), an empty message, a message without a value.
CREATE FOREIGN TABLE copy_in (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), a text, b text, c date)
SERVER copy_server OPTIONS (topic 'regress_import_copy');
CREATE TABLE copied (c date, b text, offs bigint, a text, part int);
SELECT kafka_fdw.import('copy_in', 'copied');
SELECT (SELECT count(*) FROM copy_in) AS in_topic, count(*) AS imported,
       (SELECT count(*) FROM (SELECT part, offs, a, b, c FROM copy_in EXCEPT ALL SELECT part, offs, a, b, c FROM copied) d) AS missing,
       (SELECT count(*) FROM (SELECT part, offs, a, b, c FROM copied EXCEPT ALL SELECT part, offs, a, b, c FROM copy_in) d) AS extra
FROM copied;
SELECT part, offs, a, b, c, a IS NULL AS a_null, b IS NULL AS b_null FROM copied ORDER BY part, offs;
SELECT partition, next_offset FROM kafka_fdw.import_progress WHERE target = 'copied'::regclass ORDER BY partition;
-- Nothing new: nothing imported.
SELECT kafka_fdw.import('copy_in', 'copied');

-- One data column: the message `\.` alone on its line would end COPY's input; it goes
-- in quoted, as the same value.
CREATE FOREIGN TABLE copy_one (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), a text)
SERVER copy_server OPTIONS (topic 'regress_import_copy');
CREATE TABLE copied_one (part int, offs bigint, a text);
SELECT kafka_fdw.import('copy_one', 'copied_one');
SELECT count(*) AS imported,
       (SELECT count(*) FROM (SELECT * FROM copy_one EXCEPT ALL SELECT * FROM copied_one) d) AS missing
FROM copied_one;
SELECT part, offs, a FROM copied_one WHERE a LIKE '\\.%' ORDER BY part, offs;

-- Where COPY would read otherwise (a column the target lacks, the message key), the
-- scan's rows go in, and the NOTICE says why.
CREATE TABLE copy_partial (a text, b text);
SELECT kafka_fdw.import('copy_in', 'copy_partial');
CREATE FOREIGN TABLE copy_keyed (k text OPTIONS (key 'true'), part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), a text, b text, c date)
SERVER copy_server OPTIONS (topic 'regress_import_copy');
CREATE TABLE copy_keyed_target (k text, a text, b text, c date);
SELECT kafka_fdw.import('copy_keyed', 'copy_keyed_target');
SELECT count(*) AS imported FROM copy_keyed_target;

-- Bad messages fail as in the scan, with the scan's error naming the message (the
-- second message spans three lines in COPY's input), and nothing is imported or stored.
CREATE FUNCTION copy_error_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || E'\n' || coalesce(detail, '');
END
$$;
CREATE FOREIGN TABLE copy_bad_dates (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), a int, b text, c date)
SERVER copy_server OPTIONS (topic 'regress_import_copy_bad');
CREATE FOREIGN TABLE copy_bad_strict (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), a int, b text, c text)
SERVER copy_server OPTIONS (topic 'regress_import_copy_bad', strict 'true');
CREATE FOREIGN TABLE copy_bad_quote (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), a int, b text, c text)
SERVER copy_server OPTIONS (topic 'regress_import_copy_bad');
CREATE TABLE copy_bad_target (a int, b text, c date);
CREATE TABLE copy_bad_text_target (a int, b text, c text);
SELECT copy_error_of($$SELECT kafka_fdw.import('copy_bad_dates', 'copy_bad_target')$$) AS import,
       copy_error_of($$SELECT kafka_fdw.import('copy_bad_dates', 'copy_bad_target')$$)
           = copy_error_of($$SELECT count(*) FROM copy_bad_dates t WHERE t IS NOT NULL$$) AS as_the_scan;
SELECT copy_error_of($$SELECT kafka_fdw.import('copy_bad_strict', 'copy_bad_text_target')$$) AS import,
       copy_error_of($$SELECT kafka_fdw.import('copy_bad_strict', 'copy_bad_text_target')$$)
           = copy_error_of($$SELECT count(*) FROM copy_bad_strict t WHERE t IS NOT NULL$$) AS as_the_scan;
SELECT copy_error_of($$SELECT kafka_fdw.import('copy_bad_quote', 'copy_bad_text_target')$$) AS import,
       copy_error_of($$SELECT kafka_fdw.import('copy_bad_quote', 'copy_bad_text_target')$$)
           = copy_error_of($$SELECT count(*) FROM copy_bad_quote t WHERE t IS NOT NULL$$) AS as_the_scan;
SELECT (SELECT count(*) FROM copy_bad_target) + (SELECT count(*) FROM copy_bad_text_target) AS rows,
       (SELECT count(*) FROM kafka_fdw.import_progress WHERE target IN ('copy_bad_target'::regclass, 'copy_bad_text_target'::regclass)) AS offsets;
-- The first messages alone import.
SELECT kafka_fdw.import('copy_bad_dates', 'copy_bad_target', max_messages => 2);
SELECT a, b, c FROM copy_bad_target ORDER BY a;
-- A constraint COPY checks fails the import; its detail names the message of the row.
CREATE TABLE copy_picky_dates (a int, b text, c date CHECK (c < '2024-01-02'), part int, offs bigint);
SELECT copy_error_of($$SELECT kafka_fdw.import('copy_bad_dates', 'copy_picky_dates', max_messages => 2)$$) AS import;
SELECT count(*) AS rows, (SELECT count(*) FROM kafka_fdw.import_progress WHERE target = 'copy_picky_dates'::regclass) AS offsets FROM copy_picky_dates;

-- The exactly-once import's progress and status. Included by src/lib.rs; the import
-- itself (kafka_fdw.import and its helpers) is src/api/import/, and the scheduled
-- imports are tasks (sql/tasks.sql).
--
-- Everything here names what it uses by its schema, so no function or operator another
-- role creates (in public, say) can ever run in the session of whoever imports (a
-- superuser, a job's owner).

-- The next offset to import, per source, target, topic and partition (with the topic's id
-- and the brokers' cluster id, where they report them). A source of one topic keeps the
-- offsets of that topic only; one over many topics, of each. Written in
-- the same transaction as the rows it accounts for, so a crash or an error leaves neither
-- duplicates nor gaps. Only the extension writes it (src/api/import/), for roles that may
-- run the import of that pair; no normal role has any privilege on it.
CREATE TABLE kafka_fdw.import_progress (
    source regclass NOT NULL,
    target regclass NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    topic text NOT NULL,
    topic_id text,
    cluster text,
    imported_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (source, target, topic, partition)
);
REVOKE ALL ON kafka_fdw.import_progress FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.import_progress', '');

-- Per source, target, topic and partition: the stored offset, the watermarks now, the lag
-- (messages not imported yet) and when the partition last moved. Each role sees the
-- pairs whose source it may read and whose target it may read or write.
CREATE VIEW kafka_fdw.import_status WITH (security_barrier) AS
SELECT pairs.source, pairs.target, w.partition, p.next_offset, w.low, w.high,
       w.high - greatest(coalesce(p.next_offset, w.low), w.low) AS lag, p.imported_at, w.topic
FROM (SELECT DISTINCT source, target FROM kafka_fdw.import_progress
      WHERE pg_catalog.has_table_privilege(source, 'SELECT')
        AND pg_catalog.has_table_privilege(target, 'SELECT, INSERT')) pairs
CROSS JOIN LATERAL kafka_fdw.topic_watermarks(pairs.source) w
LEFT JOIN kafka_fdw.import_progress p
       ON p.source = pairs.source AND p.target = pairs.target AND p.topic = w.topic
      AND p.partition = w.partition;
GRANT SELECT ON kafka_fdw.import_status TO PUBLIC;

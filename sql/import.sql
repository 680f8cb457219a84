-- Exactly-once import of a Kafka foreign table into an ordinary table, its progress and
-- status. Included by src/lib.rs; the scheduled imports are tasks (sql/tasks.sql).
--
-- Every function here runs with search_path pinned to pg_catalog, pg_temp and names
-- everything else by its schema, so no function or operator another role creates (in
-- public, say) can ever run in the session of whoever imports (a superuser, a job's owner).

-- The next offset to import, per source, target and partition, and the topic it belongs
-- to (with its topic id and the brokers' cluster id, where they report them). Written in the same transaction as the rows it
-- accounts for, so a crash or an error leaves neither duplicates nor gaps. Only the
-- extension writes it (src/api/import/), for roles that may run the import of that pair;
-- no normal role has any privilege on it.
CREATE TABLE kafka_fdw.import_progress (
    source regclass NOT NULL,
    target regclass NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    topic text NOT NULL,
    topic_id text,
    cluster text,
    imported_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (source, target, partition)
);
REVOKE ALL ON kafka_fdw.import_progress FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.import_progress', '');

-- The columns an import reads from `source` and writes to `target`: `columns`, or the
-- target's columns the source also has.
CREATE FUNCTION kafka_fdw.import_column_list(source regclass, target regclass, columns text[]) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    names text[];
BEGIN
    IF columns IS NULL THEN
        SELECT pg_catalog.array_agg(t.attname::text ORDER BY t.attnum) INTO names
        FROM pg_catalog.pg_attribute t
        WHERE t.attrelid = target AND t.attnum > 0 AND NOT t.attisdropped
          AND EXISTS (SELECT FROM pg_catalog.pg_attribute s
                      WHERE s.attrelid = source AND s.attname = t.attname AND s.attnum > 0 AND NOT s.attisdropped);
    ELSE
        names := columns;
    END IF;
    IF coalesce(pg_catalog.cardinality(names), 0) = 0 THEN
        RAISE EXCEPTION 'no columns to import from "%" into "%"', source, target
            USING HINT = 'Give the columns, or give the target columns named as the source''s.';
    END IF;
    RETURN names;
END
$$;

-- Imports the messages of `source` not imported into `target` yet, up to the high
-- watermarks taken when it starts (and at most `max_messages`), and returns the number
-- of rows inserted. `columns` (default: the target's columns the source also has) name
-- the source columns read and the target columns written. Stored offsets that no longer
-- fit the topic (re-created or truncated) raise an ERROR, or with on_reset => 'earliest'
-- start the topic over with a WARNING. `mode` 'upsert' or 'debezium' applies the
-- messages as changes to the target's rows by key instead (kafka_fdw.apply_changes, per
-- batch; src/plan/changes.rs) and returns the rows inserted, updated or deleted. Runs as
-- its caller, with search_path pinned: so do the triggers, defaults and constraints of the
-- target it fires, whose functions should name their schemas (or SET search_path), as
-- PostgreSQL 17 asks of functions that maintenance commands run.
CREATE FUNCTION kafka_fdw.import(
    source regclass,
    target regclass,
    columns text[] DEFAULT NULL,
    max_messages bigint DEFAULT NULL,
    on_reset text DEFAULT 'error',
    mode text DEFAULT 'append'
) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    meta record;
    planned record;
    topic text;
    topic_id text;
    cluster text;
    column_names text[];
    column_list text;
    start_offset bigint;
    end_offset bigint;
    piece_end bigint;
    batch text[] := '{}';
    -- The plan, per partition: where to start and where to end (exclusive).
    plan_partitions int[] := '{}';
    plan_starts bigint[] := '{}';
    plan_ends bigint[] := '{}';
    i int;
    batch_messages bigint := 0;
    done bigint := 0;
    wanted bigint := 0;
    inserted bigint;
    copied bigint;
    total bigint := 0;
    budget bigint := max_messages;
    -- One batch (one kafka_fdw.bulk_insert, a COPY FROM of its rows) reads at most about
    -- this many messages, over as many partitions as it takes (partitions read together
    -- keep librdkafka's fetches busy); long imports report progress after each.
    batch_size constant bigint := 100000;
BEGIN
    PERFORM kafka_fdw.lock_import(source, target);
    SELECT * INTO meta FROM kafka_fdw.meta_columns(source);
    IF meta.partition_column IS NULL OR meta.offset_column IS NULL THEN
        RAISE EXCEPTION 'kafka_fdw.import needs the partition and offset columns of "%"', source
            USING HINT = 'Add columns with the options partition ''true'' and offset ''true'' to the foreign table.';
    END IF;
    IF mode = 'append' THEN
        column_names := kafka_fdw.import_column_list(source, target, columns);
        SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ' ORDER BY n) INTO column_list
        FROM pg_catalog.unnest(column_names) WITH ORDINALITY AS u(c, n);
    ELSE
        PERFORM kafka_fdw.check_import_mode(source, target, columns, mode);
    END IF;

    -- From the stored offsets (checked against the topic: see src/plan/progress.rs) to the
    -- high watermarks taken now.
    FOR planned IN SELECT * FROM kafka_fdw.import_plan(source, target, on_reset) ORDER BY partition LOOP
        topic := planned.topic;
        topic_id := planned.topic_id;
        cluster := planned.cluster;
        start_offset := planned.start_offset;
        end_offset := planned.end_offset;
        IF budget IS NOT NULL THEN
            end_offset := least(end_offset, start_offset + greatest(budget, 0));
            budget := budget - (end_offset - start_offset);
        END IF;
        plan_partitions := plan_partitions || planned.partition;
        plan_starts := plan_starts || start_offset;
        plan_ends := plan_ends || end_offset;
        wanted := wanted + (end_offset - start_offset);
    END LOOP;

    -- CSV messages go straight into COPY FROM's parser when that gives the rows the scan
    -- gives (one COPY for the whole plan); otherwise (NULL) the scan's rows go in batches.
    IF mode = 'append' THEN
        copied := kafka_fdw.copy_messages(source, target, column_names, plan_partitions, plan_starts, plan_ends);
    END IF;
    IF copied IS NOT NULL THEN
        total := copied;
    ELSE
        -- Read the ranges in batches of about batch_size messages.
        FOR i IN 1 .. coalesce(pg_catalog.array_length(plan_partitions, 1), 0) LOOP
            start_offset := plan_starts[i];
            WHILE start_offset < plan_ends[i] LOOP
                piece_end := least(plan_ends[i], start_offset + (batch_size - batch_messages));
                batch := batch || pg_catalog.format('(%I = %s AND %I >= %s AND %I < %s)', meta.partition_column, plan_partitions[i],
                                         meta.offset_column, start_offset, meta.offset_column, piece_end);
                batch_messages := batch_messages + (piece_end - start_offset);
                start_offset := piece_end;
                IF batch_messages >= batch_size THEN
                    IF mode = 'append' THEN
                        inserted := kafka_fdw.bulk_insert(target, column_names, pg_catalog.format('SELECT %s FROM %s WHERE %s', column_list,
                                                          source, pg_catalog.array_to_string(batch, ' OR ')));
                    ELSE
                        inserted := kafka_fdw.apply_changes(source, target, columns, mode, pg_catalog.array_to_string(batch, ' OR '));
                    END IF;
                    total := total + inserted;
                    done := done + batch_messages;
                    RAISE NOTICE 'kafka_fdw.import: % of % messages of "%"', done, wanted, source;
                    batch := '{}';
                    batch_messages := 0;
                END IF;
            END LOOP;
        END LOOP;
        IF batch_messages > 0 AND mode = 'append' THEN
            inserted := kafka_fdw.bulk_insert(target, column_names, pg_catalog.format('SELECT %s FROM %s WHERE %s', column_list,
                                              source, pg_catalog.array_to_string(batch, ' OR ')));
            total := total + inserted;
        ELSIF batch_messages > 0 THEN
            total := total + kafka_fdw.apply_changes(source, target, columns, mode, pg_catalog.array_to_string(batch, ' OR '));
        END IF;

    END IF;

    IF topic IS NOT NULL THEN
        PERFORM kafka_fdw.save_import_progress(source, target, topic, topic_id, cluster, plan_partitions, plan_ends);
    END IF;
    RETURN total;
END
$$;

-- Per source, target and partition: the stored offset, the watermarks now, the lag
-- (messages not imported yet) and when the partition last moved. Each role sees the
-- pairs whose source it may read and whose target it may read or write.
CREATE VIEW kafka_fdw.import_status WITH (security_barrier) AS
SELECT pairs.source, pairs.target, w.partition, p.next_offset, w.low, w.high,
       w.high - greatest(coalesce(p.next_offset, w.low), w.low) AS lag, p.imported_at
FROM (SELECT DISTINCT source, target FROM kafka_fdw.import_progress
      WHERE pg_catalog.has_table_privilege(source, 'SELECT')
        AND pg_catalog.has_table_privilege(target, 'SELECT, INSERT')) pairs
CROSS JOIN LATERAL kafka_fdw.watermarks(pairs.source) w
LEFT JOIN kafka_fdw.import_progress p
       ON p.source = pairs.source AND p.target = pairs.target AND p.partition = w.partition;
GRANT SELECT ON kafka_fdw.import_status TO PUBLIC;

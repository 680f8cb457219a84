-- Exactly-once import of a Kafka foreign table into an ordinary table, its progress and
-- status, and the jobs the scheduler runs. Included by src/lib.rs.

-- The next offset to import, per source, target and partition. Written in the same
-- transaction as the rows it accounts for, so a crash or an error leaves neither
-- duplicates nor gaps.
CREATE TABLE kafka_fdw.import_progress (
    source regclass NOT NULL,
    target regclass NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, target, partition)
);
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.import_progress', '');

-- Imports the messages of `source` not imported into `target` yet, up to the high
-- watermarks taken when it starts (and at most `max_messages`), and returns the number
-- of rows inserted. `columns` (default: the target's columns the source also has) name
-- the source columns read and the target columns written.
CREATE FUNCTION kafka_fdw.import(
    source regclass,
    target regclass,
    columns text[] DEFAULT NULL,
    max_messages bigint DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    meta record;
    marks record;
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
    total bigint := 0;
    budget bigint := max_messages;
    -- One INSERT reads at most about this many messages, over as many partitions as it
    -- takes (partitions read together keep librdkafka's fetches busy); long imports
    -- report progress after each.
    batch_size constant bigint := 100000;
BEGIN
    -- One import per source and target at a time: a second one waits for the first and
    -- then starts from the offsets it stored.
    PERFORM pg_catalog.pg_advisory_xact_lock(hashtext('kafka_fdw.import ' || source::oid || ' ' || target::oid));
    SELECT * INTO meta FROM kafka_fdw.meta_columns(source);
    IF meta.partition_column IS NULL OR meta.offset_column IS NULL THEN
        RAISE EXCEPTION 'kafka_fdw.import needs the partition and offset columns of "%"', source
            USING HINT = 'Add columns with the options partition ''true'' and offset ''true'' to the foreign table.';
    END IF;
    IF columns IS NULL THEN
        SELECT string_agg(quote_ident(t.attname), ', ' ORDER BY t.attnum) INTO column_list
        FROM pg_catalog.pg_attribute t
        WHERE t.attrelid = target AND t.attnum > 0 AND NOT t.attisdropped
          AND EXISTS (SELECT FROM pg_catalog.pg_attribute s
                      WHERE s.attrelid = source AND s.attname = t.attname AND s.attnum > 0 AND NOT s.attisdropped);
    ELSE
        SELECT string_agg(quote_ident(c), ', ' ORDER BY n) INTO column_list FROM unnest(columns) WITH ORDINALITY AS u(c, n);
    END IF;
    IF column_list IS NULL THEN
        RAISE EXCEPTION 'no columns to import from "%" into "%"', source, target
            USING HINT = 'Give the columns, or give the target columns named as the source''s.';
    END IF;

    FOR marks IN SELECT * FROM kafka_fdw.watermarks(source) ORDER BY partition LOOP
        SELECT next_offset INTO start_offset FROM kafka_fdw.import_progress p
        WHERE p.source = import.source AND p.target = import.target AND p.partition = marks.partition;
        IF NOT FOUND THEN
            -- A partition seen for the first time: from its oldest message.
            start_offset := marks.low;
        ELSIF start_offset < marks.low THEN
            RAISE WARNING 'messages % to % of partition % of "%" were deleted by retention before they were imported',
                start_offset, marks.low - 1, marks.partition, source;
            start_offset := marks.low;
        END IF;
        end_offset := marks.high;
        IF budget IS NOT NULL THEN
            end_offset := least(end_offset, start_offset + greatest(budget, 0));
            budget := budget - (end_offset - start_offset);
        END IF;
        plan_partitions := plan_partitions || marks.partition;
        plan_starts := plan_starts || start_offset;
        plan_ends := plan_ends || end_offset;
        wanted := wanted + (end_offset - start_offset);
    END LOOP;

    -- Read the ranges in batches of about batch_size messages.
    FOR i IN 1 .. coalesce(array_length(plan_partitions, 1), 0) LOOP
        start_offset := plan_starts[i];
        WHILE start_offset < plan_ends[i] LOOP
            piece_end := least(plan_ends[i], start_offset + (batch_size - batch_messages));
            batch := batch || format('(%I = %s AND %I >= %s AND %I < %s)', meta.partition_column, plan_partitions[i],
                                     meta.offset_column, start_offset, meta.offset_column, piece_end);
            batch_messages := batch_messages + (piece_end - start_offset);
            start_offset := piece_end;
            IF batch_messages >= batch_size THEN
                EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s', target, column_list, column_list,
                               source, array_to_string(batch, ' OR '));
                GET DIAGNOSTICS inserted = ROW_COUNT;
                total := total + inserted;
                done := done + batch_messages;
                RAISE NOTICE 'kafka_fdw.import: % of % messages of "%"', done, wanted, source;
                batch := '{}';
                batch_messages := 0;
            END IF;
        END LOOP;
    END LOOP;
    IF batch_messages > 0 THEN
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s', target, column_list, column_list,
                       source, array_to_string(batch, ' OR '));
        GET DIAGNOSTICS inserted = ROW_COUNT;
        total := total + inserted;
    END IF;

    INSERT INTO kafka_fdw.import_progress AS p (source, target, partition, next_offset, imported_at)
    SELECT import.source, import.target, planned.partition, planned.next_offset, now()
    FROM unnest(plan_partitions, plan_ends) AS planned(partition, next_offset)
    ON CONFLICT ON CONSTRAINT import_progress_pkey DO UPDATE
        SET next_offset = excluded.next_offset,
            imported_at = CASE WHEN excluded.next_offset <> p.next_offset THEN excluded.imported_at ELSE p.imported_at END;
    RETURN total;
END
$$;

-- Per source, target and partition: the stored offset, the watermarks now, the lag
-- (messages not imported yet) and when the partition last moved.
CREATE VIEW kafka_fdw.import_status AS
SELECT pairs.source, pairs.target, w.partition, p.next_offset, w.low, w.high,
       w.high - greatest(coalesce(p.next_offset, w.low), w.low) AS lag, p.imported_at
FROM (SELECT DISTINCT source, target FROM kafka_fdw.import_progress) pairs
CROSS JOIN LATERAL kafka_fdw.watermarks(pairs.source) w
LEFT JOIN kafka_fdw.import_progress p
       ON p.source = pairs.source AND p.target = pairs.target AND p.partition = w.partition;

-- Continuous imports, run by the extension's scheduler (a background worker; needs
-- shared_preload_libraries = 'kafka_fdw' and kafka_fdw.scheduler_database).
CREATE TABLE kafka_fdw.import_jobs (
    job_id serial PRIMARY KEY,
    source regclass NOT NULL,
    target regclass NOT NULL,
    columns text[],
    run_every interval NOT NULL DEFAULT '1 second',
    next_run timestamptz NOT NULL DEFAULT now(),
    last_run timestamptz,
    last_rows bigint,
    last_error text,
    failures int NOT NULL DEFAULT 0,
    UNIQUE (source, target)
);
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.import_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.import_jobs_job_id_seq', '');

CREATE FUNCTION kafka_fdw.start_import(
    source regclass,
    target regclass,
    columns text[] DEFAULT NULL,
    run_every interval DEFAULT '1 second'
) RETURNS int LANGUAGE sql AS $$
    INSERT INTO kafka_fdw.import_jobs (source, target, columns, run_every)
    VALUES (source, target, columns, run_every)
    ON CONFLICT (source, target) DO UPDATE
        SET columns = excluded.columns, run_every = excluded.run_every, next_run = now(),
            failures = 0, last_error = NULL
    RETURNING job_id;
$$;

CREATE FUNCTION kafka_fdw.stop_import(source regclass, target regclass) RETURNS boolean LANGUAGE sql AS $$
    WITH stopped AS (
        DELETE FROM kafka_fdw.import_jobs j WHERE j.source = stop_import.source AND j.target = stop_import.target
        RETURNING 1
    )
    SELECT count(*) > 0 FROM stopped;
$$;

-- One run of one job, in the caller's transaction: the import and the job's bookkeeping
-- commit together. A failure rolls the import back (the EXCEPTION block is a
-- subtransaction), is recorded, and backs off: the wait doubles up to a minute.
CREATE FUNCTION kafka_fdw.run_import_job(job int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    j kafka_fdw.import_jobs;
    rows bigint;
BEGIN
    SELECT * INTO j FROM kafka_fdw.import_jobs WHERE job_id = job FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    BEGIN
        rows := kafka_fdw.import(j.source, j.target, j.columns);
        UPDATE kafka_fdw.import_jobs
        SET last_run = now(), last_rows = rows, last_error = NULL, failures = 0,
            next_run = greatest(j.next_run + j.run_every, now())
        WHERE job_id = job;
    EXCEPTION WHEN OTHERS THEN
        UPDATE kafka_fdw.import_jobs
        SET last_run = now(), last_error = SQLERRM, failures = j.failures + 1,
            next_run = now() + least(j.run_every * power(2, least(j.failures, 16)), interval '1 minute')
        WHERE job_id = job;
        RAISE WARNING 'kafka_fdw import job % ("%" into "%") failed: %', job, j.source, j.target, SQLERRM;
    END;
END
$$;

CREATE VIEW kafka_fdw.import_jobs_status AS
SELECT j.job_id, j.source, j.target, j.run_every,
       CASE WHEN j.last_error IS NOT NULL THEN 'failing'
            WHEN j.last_run IS NULL THEN 'waiting'
            ELSE 'running' END AS state,
       j.last_run, j.last_rows, j.last_error, j.failures, j.next_run,
       (SELECT sum(s.lag) FROM kafka_fdw.import_status s WHERE s.source = j.source AND s.target = j.target) AS lag
FROM kafka_fdw.import_jobs j;

"""kafka_fdw benchmarks: each pair measures kafka_fdw and its baseline in the same run,
on the same broker and data, and reports the median of several runs and their ratio.

Run through bench/run.sh, which starts the brokers and PostgreSQL and sets:
  MOCK_BROKERS, MOCK_CONTROL  librdkafka mock cluster hosted by kafka-tool (main broker)
  KAFKA_BROKERS               Apache Kafka, for the broker-bound run of pair 1 and for pair 10
  KAFKA_REGISTRY_URL          kafka-tool's schema registry, for the Avro topic
  PGHOST, PGPORT, PGUSER      the throwaway cluster
  KAFKA_TOOL                  the kafka-tool binary (raw consume/produce loops)
  BENCH_DIR                   scratch directory for data files
  SCHEDULER_DATABASE          the scheduler's database (pairs 11 and 14)
Sizes (chosen so the whole bench takes about 10 minutes): BENCH_MESSAGES (default
1000000), BENCH_RSS_MESSAGES (default 5000000), BENCH_RUNS (default 5),
BENCH_FRESHNESS_SAMPLES (default 50), BENCH_SCHEDULER_SECONDS (default 15),
BENCH_SCHEDULER_HISTORY_RUNS (default 2000); pair 9 (distance):
BENCH_DISTANCE_MESSAGES (default 100000), BENCH_DISTANCE_RUNS (default 3); pair 10 (ANALYZE):
BENCH_ANALYZE_MESSAGES (default "100000,1000000"), BENCH_KAFKA_RUNS (default 3). BENCH_PAIRS ("5,11",
"codecs") runs only those pairs. The table is also drawn as an SVG chart, BENCH_CHART
(default docs/benchmarks.svg).
"""

import os
import random
import re
import statistics
import subprocess
import sys
import time

import psycopg

import chart

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000000"))
RSS_MESSAGES = int(os.environ.get("BENCH_RSS_MESSAGES", "5000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
# Runs of pair 10 on Apache Kafka, a real broker's disk and fetch sizes.
KAFKA_RUNS = int(os.environ.get("BENCH_KAFKA_RUNS", "3"))
# Topic sizes of pair 10 (ANALYZE), comma-separated.
ANALYZE_MESSAGES = [int(n) for n in os.environ.get("BENCH_ANALYZE_MESSAGES", "100000,1000000").split(",")]
# Pairs to run, by number ("5,11"); all by default.
PAIRS = set(filter(None, os.environ.get("BENCH_PAIRS", "").split(",")))
FRESHNESS_SAMPLES = int(os.environ.get("BENCH_FRESHNESS_SAMPLES", "50"))
SCHEDULER_SECONDS = int(os.environ.get("BENCH_SCHEDULER_SECONDS", "15"))
SCHEDULER_HISTORY_RUNS = int(os.environ.get("BENCH_SCHEDULER_HISTORY_RUNS", "2000"))
# Pair 9's topic and runs at a distance (a scan at 200 ms takes seconds).
DISTANCE_MESSAGES = int(os.environ.get("BENCH_DISTANCE_MESSAGES", "100000"))
DISTANCE_RUNS = int(os.environ.get("BENCH_DISTANCE_RUNS", "3"))
# Keys of pair 12's topic.
KEYS = MESSAGES // 10
SCHEDULER_DATABASE = os.environ["SCHEDULER_DATABASE"]
CHART = os.environ.get("BENCH_CHART", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks.svg"))
PARTITIONS = 32
TOOL = os.environ["KAFKA_TOOL"]
MOCK = os.environ["MOCK_BROKERS"]
MOCK_CONTROL = os.environ["MOCK_CONTROL"]
KAFKA = os.environ["KAFKA_BROKERS"]
REGISTRY = os.environ["KAFKA_REGISTRY_URL"]
WORK = os.environ["BENCH_DIR"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

rows_out = []
# Wall time of each pair run, and of the whole bench (the setup included).
pair_seconds = []
STARTED = time.monotonic()


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def json_line(i):
    """The same row as csv_line, as a JSON object (about 150 bytes)."""
    return (f'{{"some_int": {i}, "some_text": "payload text number {i:09d} with some padding", '
            f'"some_date": "2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}", "some_time": "2024-01-01 {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"}}')


def csv_line(i):
    """About 100 bytes: an int, a text, a date and a timestamp."""
    return f"{i},payload text number {i:09d} with some padding to reach about one hundred bytes,2024-{i % 12 + 1:02d}-{i % 28 + 1:02d},2024-01-01 {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"


# The JSON lines' row as an Avro record: the same four fields, typed.
AVRO_SCHEMA = """{"type": "record", "name": "Row", "fields": [
    {"name": "some_int", "type": "long"}, {"name": "some_text", "type": "string"},
    {"name": "some_date", "type": {"type": "int", "logicalType": "date"}},
    {"name": "some_time", "type": {"type": "long", "logicalType": "local-timestamp-micros"}}]}"""


def produce_avro(topic, json_path):
    """The JSON lines as Avro in the registry's wire format (kafka-tool registers the schema)."""
    schema_path = os.path.join(WORK, "bench_row.avsc")
    with open(schema_path, "w") as out:
        out.write(AVRO_SCHEMA)
    log(f"loading {topic} from {os.path.basename(json_path)} as Avro")
    with open(json_path) as lines:
        subprocess.run([TOOL, "produce-avro", "--brokers", MOCK, "--topic", topic, "--schema-file", schema_path,
                        "--registry", REGISTRY, "--round-robin"], stdin=lines, check=True, capture_output=True)


def bad_csv_line(i):
    """csv_line, with one line in a hundred not a valid row (its int is not a number)."""
    line = csv_line(i)
    return "x" + line if i % 100 == 0 else line


def write_lines(path, count, line):
    if os.path.exists(path):
        return path
    log(f"writing {count} lines to {path}")
    with open(path + ".partial", "w") as out:
        for i in range(count):
            out.write(line(i))
            out.write("\n")
    os.rename(path + ".partial", path)
    return path


def tool(*args):
    return subprocess.run([TOOL, *args], check=True, capture_output=True, text=True).stdout


def mock_topic(name, partitions):
    tool("mock-ctl", "--control", MOCK_CONTROL, "create-topic", name, str(partitions))


def produce(brokers, topic, path, *extra):
    log(f"loading {topic} from {os.path.basename(path)}")
    return tool("produce", "--brokers", brokers, "--topic", topic, "--round-robin", "--file", path, *extra)


def timed_tool(*args):
    """(seconds, CPU seconds, stdout) of one kafka-tool run. The seconds are the tool's
    own measure of its loop (client creation included, process start not), the CPU
    seconds the whole process's."""
    before = os.times()
    output = tool(*args)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    seconds = float(re.search(r" in ([0-9.]+) s", output).group(1))
    return seconds, cpu, output


def raw_consume(topic, passes=3):
    """(seconds, CPU seconds per pass) of the raw consume loop with a warm client, like a
    pooled one: `passes` passes in one process, the median of all but the first."""
    seconds, cpu, output = timed_tool("count", "--brokers", MOCK, "--topic", topic, "--passes", str(passes))
    passes = [float(t) for t in re.findall(r" in ([0-9.]+) s", output)]
    return statistics.median(passes[1:]), cpu / len(passes)


def backend_cpu(pid):
    """User + system CPU seconds of a backend process, all its threads included."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def backend_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Session:
    def __init__(self):
        self.conn = psycopg.connect(dbname="bench", autocommit=True)
        self.pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    def run(self, sql):
        """(seconds, backend CPU seconds, first row) of one statement."""
        cpu_before = backend_cpu(self.pid)
        started = time.perf_counter()
        cursor = self.conn.execute(sql)
        row = cursor.fetchone() if cursor.description else None
        elapsed = time.perf_counter() - started
        return elapsed, backend_cpu(self.pid) - cpu_before, row

    def execute(self, sql):
        self.conn.execute(sql)


def median_of(measure, runs=None):
    """Runs `measure` `runs` times (RUNS by default), after one warm-up; medians of each
    returned number."""
    measure()
    samples = [measure() for _ in range(runs or RUNS)]
    return [statistics.median(column) for column in zip(*samples)]


def report(pair, ours_label, ours_seconds, base_label, base_seconds, messages, goal, extra=""):
    ratio = base_seconds / ours_seconds if ours_seconds else float("inf")
    rows_out.append(
        f"| {pair} | {ours_label} | {ours_seconds * 1000:.1f} ms | {messages / ours_seconds:,.0f}/s "
        f"| {base_label} | {base_seconds * 1000:.1f} ms | {messages / base_seconds:,.0f}/s | {ratio:.2f}x | {goal} | {extra} |"
    )
    log(rows_out[-1])


def setup_database(session):
    session.execute("DROP EXTENSION IF EXISTS kafka_fdw CASCADE")
    session.execute("DROP DOMAIN IF EXISTS checked_int CASCADE")
    session.execute("CREATE EXTENSION kafka_fdw")
    session.execute(f"CREATE SERVER mock FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '{MOCK}', mpp_execute 'all segments', timeout_ms '60000')")
    session.execute(f"CREATE SERVER kafka FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '{KAFKA}', timeout_ms '60000')")
    for server in ("mock", "kafka"):
        session.execute(f"CREATE USER MAPPING FOR PUBLIC SERVER {server}")
    columns = "part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), some_int int, some_text text, some_date date, some_time timestamp"
    for table, server, topic in [
        ("csv_mock", "mock", "bench_csv"),
        ("csv_out", "mock", "bench_out"),
        ("csv_kafka", "kafka", "bench_csv"),
        ("point_1k", "mock", "bench_1k"),
        ("caught_up", "mock", "bench_empty"),
        ("rss_mock", "mock", "bench_rss"),
        ("far_mock", "mock", "bench_far"),
    ]:
        options = "buffer_delay '5000'" if table == "caught_up" else "buffer_delay '100'"
        session.execute(f"CREATE FOREIGN TABLE {table} ({columns}) SERVER {server} OPTIONS (topic '{topic}', {options})")
    session.execute(f"CREATE FOREIGN TABLE json_mock ({columns}) SERVER mock OPTIONS (topic 'bench_json', format 'json')")
    session.execute(f"CREATE SERVER mock_registry FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '{MOCK}', timeout_ms '60000', schema_registry '{REGISTRY}')")
    session.execute("CREATE USER MAPPING FOR PUBLIC SERVER mock_registry")
    session.execute(f"CREATE FOREIGN TABLE avro_mock ({columns}) SERVER mock_registry OPTIONS (topic 'bench_avro', format 'avro')")
    session.execute(f"CREATE FOREIGN TABLE csv_skip ({columns}) SERVER mock OPTIONS (topic 'bench_csv', on_error 'skip')")
    session.execute(f"CREATE FOREIGN TABLE bad_skip ({columns}) SERVER mock OPTIONS (topic 'bench_bad', on_error 'skip')")
    session.execute("CREATE DOMAIN checked_int AS int CHECK (VALUE >= 0)")
    session.execute(f"CREATE FOREIGN TABLE domain_skip ({columns.replace('some_int int', 'some_int checked_int')}) SERVER mock OPTIONS (topic 'bench_csv', on_error 'skip')")
    session.execute("CREATE TABLE csv_heap (some_int int, some_text text, some_date date, some_time timestamp)")
    session.execute(f"CREATE FOREIGN TABLE csv_txn_out ({columns}) SERVER mock OPTIONS (topic 'bench_txn_out', transactional 'true')")


def measure_copy(session, csv_path):
    """COPY FROM of the CSV lines into a heap table: (median seconds, median backend CPU)."""
    return median_of(lambda: session.run(f"TRUNCATE csv_heap; COPY csv_heap FROM '{csv_path}' (FORMAT csv)")[:2])


def pair_full_scan(session, fmt, table, topic, copy):
    """Pair 1 for one format: count(*), which decodes nothing, versus the raw consume loop
    over the same topic; then backend CPU per row with every column decoded versus raw
    consume CPU + COPY FROM CPU of the same rows as CSV (`copy`, from measure_copy)."""
    _, _, (count,) = session.run(f"SELECT count(*) FROM {table}")
    assert count == MESSAGES, f"scan counted {count} of {MESSAGES}"
    ours, _ = median_of(lambda: session.run(f"SELECT count(*) FROM {table}")[:2])
    raw, raw_cpu = median_of(lambda: raw_consume(topic))
    report(f"1 full scan, count(*), {fmt} (mock)", "SELECT count(*)", ours, "kafka-tool count (warm)", raw, MESSAGES, ">= 0.8x")

    # Every column decoded: the whole-row reference makes the scan convert every field.
    # In the backend alone: parallel workers' CPU would not be counted (the mock server
    # allows parallel scans, the registry server does not), so the formats compare fairly.
    session.execute("SET max_parallel_workers_per_gather = 0")
    decoded, decoded_cpu = median_of(lambda: session.run(f"SELECT count(*) FROM {table} t WHERE t IS NOT NULL")[:2])
    session.execute("RESET max_parallel_workers_per_gather")
    copy_seconds, copy_cpu = copy
    per_row = decoded_cpu / MESSAGES * 1e6
    baseline = (raw_cpu + copy_cpu) / MESSAGES * 1e6
    pair = "1 CPU per row, all columns decoded (mock)" if fmt == "CSV" else f"1 CPU per row, all columns decoded, {fmt} (mock)"
    base_label = "raw consume CPU + COPY FROM CPU" if fmt == "CSV" else "raw consume CPU + COPY FROM CPU (CSV)"
    rows_out.append(
        f"| {pair} | backend CPU | {per_row:.2f} µs | | {base_label} "
        f"| {baseline:.2f} µs | | {per_row / baseline:.2f}x (ours/baseline) | <= 1.2x | scan {decoded * 1000:.0f} ms, COPY {copy_seconds * 1000:.0f} ms |"
    )
    log(rows_out[-1])


def pair_insert(session, csv_path):
    """Pair 4: INSERT ... SELECT of every row versus the raw produce loop, same lines."""
    session.execute("TRUNCATE csv_heap")
    session.execute(f"COPY csv_heap FROM '{csv_path}' (FORMAT csv)")
    ours, _ = median_of(lambda: session.run("INSERT INTO csv_out (some_int, some_text, some_date, some_time) SELECT * FROM csv_heap")[:2])
    raw, _ = median_of(lambda: timed_tool("produce", "--brokers", MOCK, "--topic", "bench_out_raw", "--file", csv_path)[:2])
    report("4 INSERT ... SELECT, CSV (mock)", "INSERT ... SELECT", ours, "kafka-tool produce", raw, MESSAGES, ">= 0.7x")


def pair_transactional_insert(session, csv_path):
    """Pair 13: INSERT ... SELECT of every row into a transactional table (one Kafka
    transaction, committed with the statement's) versus the same INSERT without
    transactions, measured alternately."""
    session.execute("TRUNCATE csv_heap")
    session.execute(f"COPY csv_heap FROM '{csv_path}' (FORMAT csv)")
    insert = "INSERT INTO {} (some_int, some_text, some_date, some_time) SELECT * FROM csv_heap"

    def both():
        plain = session.run(insert.format("csv_out"))[0]
        transactional = session.run(insert.format("csv_txn_out"))[0]
        return transactional, plain

    ours, plain = median_of(both)
    report("13 transactional INSERT ... SELECT, CSV (mock)", "transactional", ours, "non-transactional INSERT", plain, MESSAGES, ">= 0.8x")


def pair_import(session, csv_path):
    """Pair 5: the built-in import of every message versus COPY FROM of the same lines
    into the same table; then both into a table with a primary key. The sides alternate
    run by run, so a load change on the shared machine hits both; INSERT ... SELECT from
    the foreign table (the scan's rows, what the import ran before issue 20) alongside.
    The import takes the direct path (messages into COPY's CSV parser): the target takes
    every data column of the source."""
    # The lines in the order the import inserts them (the heap's order after an import into
    # the table without an index): with a primary key the order is most of the cost (a
    # key-ordered file appends to the index's last page; 32 partitions' interleaved keys
    # split pages all over it), so the keyed variant also runs COPY FROM in that order.
    import_order_path = f"{csv_path}.import_order"
    for key in ("", ", PRIMARY KEY (some_int)"):
        table = "import_target_pk" if key else "import_target"
        session.execute(f"CREATE TABLE IF NOT EXISTS {table} (some_int int, some_text text, some_date date, some_time timestamp{key})")

        def import_once():
            session.execute(f"TRUNCATE {table}; DELETE FROM kafka_fdw.import_progress")
            return session.run(f"SELECT kafka_fdw.import('csv_mock', '{table}')")[:2]

        def copy_once():
            session.execute(f"TRUNCATE {table}")
            return session.run(f"COPY {table} FROM '{csv_path}' (FORMAT csv)")[:2]

        def insert_select_once():
            session.execute(f"TRUNCATE {table}")
            return session.run(f"INSERT INTO {table} SELECT some_int, some_text, some_date, some_time FROM csv_mock")[:2]

        def copy_in_import_order_once():
            session.execute(f"TRUNCATE {table}")
            return session.run(f"COPY {table} FROM '{import_order_path}' (FORMAT csv)")[:2]

        if key:
            ours, copy, insert_select, in_order = median_of(
                lambda: (import_once()[0], copy_once()[0], insert_select_once()[0], copy_in_import_order_once()[0]))
        else:
            ours, copy, insert_select = median_of(lambda: (import_once()[0], copy_once()[0], insert_select_once()[0]))
        import_once()
        (count,) = session.conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert count == MESSAGES, f"imported {count} of {MESSAGES}"
        if not key:
            session.execute(f"COPY {table} TO '{import_order_path}' (FORMAT csv)")
        pair = "5 built-in import vs COPY FROM, CSV (mock)" + (", primary key" if key else "")
        extra = f"INSERT ... SELECT of the same rows from the foreign table: {insert_select * 1000:.0f} ms, {copy / insert_select:.2f}x"
        if key:
            extra += f"; COPY FROM of the lines in the import's order: {in_order * 1000:.0f} ms, import {in_order / ours:.2f}x of it"
        report(pair, "kafka_fdw.import", ours, "COPY FROM file", copy, MESSAGES, ">= 0.8x", extra)


def pair_freshness():
    """Pair 11: how soon a message produced is in the target of a scheduled import with
    run_every 1 second: produced through kafka_fdw (INSERT, which returns once the broker
    acknowledged it) at a random moment of the job's cycle, then polled for in the target
    every 5 ms. Also how soon a new job's first run imports a message already there. Runs
    in the scheduler's database (SCHEDULER_DATABASE)."""
    conn = psycopg.connect(dbname=SCHEDULER_DATABASE, autocommit=True)
    conn.execute("DROP EXTENSION IF EXISTS kafka_fdw CASCADE")
    conn.execute("DROP TABLE IF EXISTS fresh_target")
    conn.execute("CREATE EXTENSION kafka_fdw")
    conn.execute(f"CREATE SERVER mock FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '{MOCK}')")
    conn.execute("CREATE USER MAPPING FOR PUBLIC SERVER mock")
    conn.execute("CREATE FOREIGN TABLE fresh (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), "
                 "some_int int) SERVER mock OPTIONS (topic 'bench_fresh')")
    conn.execute("CREATE TABLE fresh_target (some_int int)")

    def wait_for(i):
        while not conn.execute("SELECT EXISTS (SELECT FROM fresh_target WHERE some_int = %s)", (i,)).fetchone()[0]:
            time.sleep(0.005)

    conn.execute("INSERT INTO fresh (some_int) VALUES (0)")
    started = time.perf_counter()
    conn.execute("SELECT kafka_fdw.start_import('fresh', 'fresh_target', run_every => '1 second')")
    wait_for(0)
    first_run = time.perf_counter() - started
    samples = []
    for i in range(1, FRESHNESS_SAMPLES + 1):
        time.sleep(random.uniform(0, 1))
        produced = time.perf_counter()
        conn.execute("INSERT INTO fresh (some_int) VALUES (%s)", (i,))
        wait_for(i)
        samples.append(time.perf_counter() - produced)
    conn.execute("SELECT kafka_fdw.stop_import('fresh', 'fresh_target')")
    conn.close()
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    rows_out.append(
        f"| 11 scheduled import, run_every 1 s: produced to visible (mock) | p50 | {p50 * 1000:.0f} ms | | p99 | {p99 * 1000:.0f} ms "
        f"| | | p99 <= 1500 ms | {len(samples)} messages; max {samples[-1] * 1000:.0f} ms; a new job's first run: {first_run * 1000:.0f} ms |"
    )
    log(rows_out[-1])


def pair_scheduler():
    """Pair 14: the scheduler's own CPU does not grow with idle tasks, and the run history
    stays bounded. CPU of the scheduler process over SCHEDULER_SECONDS with one due
    1-second task (the baseline) against the same with 500 idle tasks besides (cron
    schedules due next year); then SCHEDULER_HISTORY_RUNS runs of 1-second tasks with
    kafka_fdw.task_run_history = 5, counting the history's rows. Runs in the scheduler's
    database (SCHEDULER_DATABASE)."""
    conn = psycopg.connect(dbname=SCHEDULER_DATABASE, autocommit=True)
    conn.execute("DROP EXTENSION IF EXISTS kafka_fdw CASCADE")
    conn.execute("CREATE EXTENSION kafka_fdw")
    scheduler = conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'kafka_fdw scheduler'").fetchone()[0]

    def scheduler_cpu():
        before = backend_cpu(scheduler)
        time.sleep(SCHEDULER_SECONDS)
        return backend_cpu(scheduler) - before

    conn.execute("SELECT kafka_fdw.schedule('due', '1 seconds', 'SELECT 1')")
    one = scheduler_cpu()
    conn.execute("SELECT kafka_fdw.schedule('idle_' || i, '0 0 1 1 *', 'SELECT 1') FROM generate_series(1, 500) i")
    many = scheduler_cpu()
    due_runs = conn.execute("SELECT count(*) FROM kafka_fdw.task_run_details WHERE task = 'due'").fetchone()[0]
    rows_out.append(
        f"| 14 scheduler CPU, 500 idle tasks + 1 due | {many:.2f} s CPU | in {SCHEDULER_SECONDS} s | | 1 due task | {one:.2f} s CPU | "
        f"| {many / one if one else float('inf'):.2f}x | within noise | the due task ran {due_runs} times |"
    )
    log(rows_out[-1])
    conn.execute("SELECT kafka_fdw.unschedule(task_id) FROM kafka_fdw.tasks")

    conn.execute("ALTER SYSTEM SET kafka_fdw.task_run_history = 5")
    conn.execute("SELECT pg_reload_conf()")
    tasks = 50
    conn.execute(f"SELECT kafka_fdw.schedule('history_' || i, '1 seconds', 'SELECT 1') FROM generate_series(1, {tasks}) i")
    started = time.perf_counter()
    first = conn.execute("SELECT coalesce(max(runid), 0) FROM kafka_fdw.task_runs").fetchone()[0]
    largest = 0
    while True:
        runs, rows = conn.execute("SELECT coalesce(max(runid), 0), count(*) FROM kafka_fdw.task_runs").fetchone()
        largest = max(largest, rows)
        if runs - first >= SCHEDULER_HISTORY_RUNS:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    conn.execute("SELECT kafka_fdw.unschedule(task_id) FROM kafka_fdw.tasks")
    conn.execute("ALTER SYSTEM RESET kafka_fdw.task_run_history")
    conn.execute("SELECT pg_reload_conf()")
    conn.close()
    rows_out.append(
        f"| 14 run history over {SCHEDULER_HISTORY_RUNS} runs of {tasks} 1-second tasks | {largest} rows at most | {elapsed:.0f} s "
        f"| {SCHEDULER_HISTORY_RUNS / elapsed:.0f} runs/s | bound | {tasks * 5} rows + runs in progress | | | within the bound | |"
    )
    log(rows_out[-1])


def pair_upsert(session):
    """Pair 12: the import in upsert mode (last value per key; the topic's messages over
    MESSAGES / 10 keys, so most are updates, and every 10th key's last message a
    tombstone) versus the append import of the same messages. Checks the upserted table
    against the last value per key computed in SQL."""
    path = os.path.join(WORK, f"keyed_{MESSAGES}.txt")

    def keyed_line(i):
        key = (i * 7919) % KEYS
        # A key's last message is a tombstone for every 10th key.
        return f"{key}|DELETE" if i >= MESSAGES - KEYS and key % 10 == 0 else f"{key}|{csv_line(i)}"

    write_lines(path, MESSAGES, keyed_line)
    mock_topic("bench_keyed", PARTITIONS)
    log("loading bench_keyed (keyed: the partitioner spreads the keys)")
    tool("produce", "--brokers", MOCK, "--topic", "bench_keyed", "--file", path, "--key-delimiter", "|", "--tombstone", "DELETE")
    columns = "some_int int, some_text text, some_date date, some_time timestamp"
    session.execute(f"CREATE FOREIGN TABLE keyed_mock (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), "
                    f"id text OPTIONS (key 'true'), {columns}) SERVER mock OPTIONS (topic 'bench_keyed', buffer_delay '100')")
    session.execute(f"CREATE TABLE upsert_target (id int PRIMARY KEY, {columns})")
    session.execute(f"CREATE TABLE append_target (id text, {columns})")

    def import_into(target, mode):
        def once():
            session.execute(f"TRUNCATE {target}; DELETE FROM kafka_fdw.import_progress")
            return session.run(f"SELECT kafka_fdw.import('keyed_mock', '{target}', mode => '{mode}')")[:2]
        return once

    ours, _ = median_of(import_into("upsert_target", "upsert"))
    (rows, differences) = session.conn.execute(
        "SELECT (SELECT count(*) FROM upsert_target), (SELECT count(*) FROM ("
        "  (SELECT id::int, some_int, some_text, some_date, some_time FROM ("
        "     SELECT *, rank() OVER (PARTITION BY id ORDER BY offs DESC) AS newest FROM keyed_mock) m"
        "   WHERE newest = 1 AND some_int IS NOT NULL"
        "   EXCEPT SELECT * FROM upsert_target)"
        "  UNION ALL (SELECT * FROM upsert_target EXCEPT SELECT id::int, some_int, some_text, some_date, some_time FROM ("
        "     SELECT *, rank() OVER (PARTITION BY id ORDER BY offs DESC) AS newest FROM keyed_mock) m"
        "   WHERE newest = 1 AND some_int IS NOT NULL)) d)").fetchone()
    assert differences == 0 and rows == KEYS - KEYS // 10, f"upserted {rows} rows, {differences} differing from the last values"
    append, _ = median_of(import_into("append_target", "append"))
    (count,) = session.conn.execute("SELECT count(*) FROM append_target").fetchone()
    assert count == MESSAGES, f"appended {count} of {MESSAGES}"
    report(f"12 upsert import ({KEYS:,} keys) vs append import, CSV (mock)", "import, mode upsert", ours,
           "import, mode append", append, MESSAGES, ">= 0.5x", f"{rows:,} rows after upserts and tombstones")


def pair_bad_messages(session):
    """Pair 8: what bad-message handling costs. Every column checked (on_error 'skip')
    against the default scan that raises on a bad message, on the topic with no bad
    message: built-in types catch input errors directly, so this must stay within noise.
    Then 1 % bad messages, and a domain column (its errors are caught in a subtransaction
    per value)."""
    query = "SELECT count(*) FROM {} t WHERE t IS NOT NULL"
    # Serial scans on both sides: a domain column's scan is never parallel.
    session.execute("SET max_parallel_workers_per_gather = 0")
    plain, _ = median_of(lambda: session.run(query.format("csv_mock"))[:2])
    checked, _ = median_of(lambda: session.run(query.format("csv_skip"))[:2])
    report("8 every column checked (on_error skip), no bad message (mock)", "on_error skip", checked,
           "default (raise)", plain, MESSAGES, "within noise (~0.9-1.1x)")
    _, _, (kept,) = session.run(query.format("bad_skip"))
    assert kept == MESSAGES - MESSAGES // 100, f"kept {kept}"
    bad, _ = median_of(lambda: session.run(query.format("bad_skip"))[:2])
    report("8 1 % bad messages skipped (mock)", "on_error skip", bad, "default (raise), no bad message", plain, MESSAGES, "", f"{MESSAGES // 100:,} skipped")
    domain, _ = median_of(lambda: session.run(query.format("domain_skip"))[:2])
    report("8 domain column, on_error skip, no bad message (mock)", "subtransaction per value", domain,
           "default (raise)", plain, MESSAGES, "", "int column declared as a domain with a CHECK")
    session.execute("RESET max_parallel_workers_per_gather")


def pair_distance(session):
    """Pair 9: with every mock broker 0, 50 and 200 ms away (round-trip time set on the
    whole cluster), a point read against the same read at 0 ms, and a full scan, serial
    and parallel (2 workers), against kafka-tool's raw count at the same distance. Each
    request is issued once, so distance costs a round trip per request round, never a
    timeout; a fetch brings a bounded amount per partition, so a scan at distance is as
    fast as the partitions it reads together. The topic is smaller than the other pairs'
    (DISTANCE_MESSAGES) and the runs fewer (DISTANCE_RUNS): at 200 ms a scan takes
    seconds, and the ratio is what counts. Runs last: the round-trip time applies to the
    whole mock cluster."""
    point = "SELECT * FROM far_mock WHERE part = 0 AND offs = 1000"
    scan = "SELECT count(*) FROM far_mock"
    parallel_plan = {"max_parallel_workers_per_gather": 2, "parallel_setup_cost": 0, "parallel_tuple_cost": 0}
    points, serial, parallel, raw = {}, {}, {}, {}
    for rtt in (0, 50, 200):
        tool("mock-ctl", "--control", MOCK_CONTROL, "rtt-all", str(rtt))
        session.execute("SELECT kafka_fdw.watermarks('far_mock')")  # new connections settle
        session.execute("SET max_parallel_workers_per_gather = 0")
        points[rtt] = median_of(lambda: session.run(point)[:2])[0]
        serial[rtt] = median_of(lambda: session.run(scan)[:2], DISTANCE_RUNS)[0]
        for setting, value in parallel_plan.items():
            session.execute(f"SET {setting} = {value}")
        plan = "\n".join(line for (line,) in session.conn.execute(f"EXPLAIN {scan}").fetchall())
        assert "Parallel Foreign Scan" in plan, plan
        _, _, (count,) = session.run(scan)
        assert count == DISTANCE_MESSAGES, f"parallel scan counted {count} of {DISTANCE_MESSAGES}"
        parallel[rtt] = median_of(lambda: session.run(scan)[:2], DISTANCE_RUNS)[0]
        for setting in parallel_plan:
            session.execute(f"RESET {setting}")
        raw[rtt] = raw_consume("bench_far", passes=DISTANCE_RUNS + 1)[0]
    tool("mock-ctl", "--control", MOCK_CONTROL, "rtt-all", "0")
    for rtt in (0, 50, 200):
        if rtt:
            rows_out.append(
                f"| 9 point read, brokers {rtt} ms away (mock) | RTT {rtt} ms | {points[rtt] * 1000:.1f} ms | | RTT 0 | {points[0] * 1000:.1f} ms "
                f"| | +{(points[rtt] - points[0]) * 1000:.0f} ms | ~1 RTT per request round | |"
            )
            log(rows_out[-1])
        for plan_name, seconds in (("serial", serial), ("parallel, 2 workers", parallel)):
            report(f"9 full scan count(*), {plan_name}, brokers {rtt} ms away (mock)", f"RTT {rtt} ms", seconds[rtt],
                   f"kafka-tool count, RTT {rtt} ms", raw[rtt], DISTANCE_MESSAGES, ">= 0.8x" if rtt else "",
                   f"median of {RUNS if rtt == 0 else DISTANCE_RUNS}")


def pair_analyze(session):
    """Pair 10: ANALYZE against a scan of every column (`count(t.*)`, serial) of the same
    topic, alternating run by run, on the mock cluster and on Apache Kafka, for 100,000 and
    1,000,000 messages over 1 and 32 partitions. Checks that reltuples is within 1 % of
    the messages in the topic and that every column got statistics. The mock cluster
    keeps about 5 MB per partition, so its 1-partition topics hold only their last
    ~38,000 messages; Kafka keeps everything."""
    session.execute("SET max_parallel_workers_per_gather = 0")
    notices = []
    session.conn.add_notice_handler(lambda notice: notices.append(notice.message_primary))
    columns = "part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), some_int int, some_text text, some_date date, some_time timestamp"
    for broker, server, runs in (("mock", "mock", RUNS), ("kafka", "kafka", KAFKA_RUNS)):
        for messages in ANALYZE_MESSAGES:
            lines = write_lines(os.path.join(WORK, f"csv_{messages}.csv"), messages, csv_line)
            for partitions in (1, PARTITIONS):
                topic = f"bench_analyze_{messages}_{partitions}"
                table = f"analyze_{broker}_{messages}_{partitions}"
                if broker == "mock":
                    mock_topic(topic, partitions)
                    produce(MOCK, topic, lines)
                else:
                    subprocess.run([TOOL, "create-topic", "--brokers", KAFKA, "--topic", topic, "--partitions", str(partitions)],
                                   check=True, capture_output=True)
                    produce(KAFKA, topic, lines)
                session.execute(f"CREATE FOREIGN TABLE {table} ({columns}) SERVER {server} OPTIONS (topic '{topic}', buffer_delay '100')")
                (in_topic,) = session.conn.execute(f"SELECT sum(high - low)::bigint FROM kafka_fdw.watermarks('{table}')").fetchone()
                session.run(f"SELECT count(*) FROM {table}")  # connects, as a warm-up
                scans, analyzes = [], []
                for _ in range(runs):
                    seconds, _, (count,) = session.run(f"SELECT count(t.*) FROM {table} t")
                    assert count == in_topic, f"{table}: scan of {count} rows, {in_topic} in the topic"
                    scans.append(seconds)
                    notices.clear()
                    analyzes.append(session.run(f"ANALYZE VERBOSE {table}")[0])
                scan, analyze = statistics.median(scans), statistics.median(analyzes)
                (reltuples,) = session.conn.execute(f"SELECT reltuples FROM pg_class WHERE oid = '{table}'::regclass").fetchone()
                assert abs(reltuples - in_topic) <= in_topic / 100, f"{table}: reltuples {reltuples} of {in_topic}"
                (stats,) = session.conn.execute(f"SELECT count(*) FROM pg_stats WHERE tablename = '{table}'").fetchone()
                assert stats == 6, f"{table}: statistics for {stats} columns of 6"
                sample = next((m.split("; ", 1)[1] for m in notices if "rows in sample" in m), "?")
                kept = f", the mock keeps {in_topic:,}" if in_topic != messages else ""
                rows_out.append(
                    f"| 10 ANALYZE vs scan of every column, {messages:,} messages{kept}, {partitions} partition{'s' if partitions > 1 else ''} ({broker}) "
                    f"| ANALYZE | {analyze * 1000:.1f} ms | | SELECT count(t.*) | {scan * 1000:.1f} ms | {in_topic / scan:,.0f}/s "
                    f"| {analyze / scan:.2f}x (ANALYZE/scan) | <= 0.2x | reltuples {reltuples:,.0f}; {sample}; median of {runs} |"
                )
                log(rows_out[-1])
    session.execute("RESET max_parallel_workers_per_gather")


def pair_codecs():
    """Codec throughput on a typical row, in plain Rust (release build)."""
    output = subprocess.run(
        ["cargo", "test", "--release", "--lib", "codec_throughput", "--", "--ignored", "--nocapture"],
        cwd=os.path.join(os.path.dirname(__file__), ".."), check=True, capture_output=True, text=True,
    ).stdout
    for name, rate in re.findall(r"codec (\w+): ([0-9]+) messages/s", output):
        rows_out.append(f"| codec: {name} decode, ~100-byte row, 4 fields | decoder | | {int(rate):,}/s | | | | | | plain Rust, no database |")
        log(rows_out[-1])


def pair_full_scan_kafka(session):
    """Pair 1 on Apache Kafka, once: broker-bound."""
    started = time.perf_counter()
    _, _, (count,) = session.run("SELECT count(*) FROM csv_kafka")
    ours = time.perf_counter() - started
    raw, _, _ = timed_tool("count", "--brokers", KAFKA, "--topic", "bench_csv")
    report("1 full scan, count(*), CSV (Apache Kafka, broker-bound, 1 run)", "SELECT count(*)", ours, "kafka-tool count", raw, count, ">= 0.8x")


def pair_point_read(session):
    """Pair 2: a point read on a 1M-message topic versus a 1k-message topic."""
    big_offset = MESSAGES // PARTITIONS // 2
    small_offset = 1000 // PARTITIONS // 2
    big, _ = median_of(lambda: session.run(f"SELECT * FROM csv_mock WHERE part = 0 AND offs = {big_offset}")[:2])
    small, _ = median_of(lambda: session.run(f"SELECT * FROM point_1k WHERE part = 0 AND offs = {small_offset}")[:2])
    plan = session.conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM csv_mock WHERE part = 0 AND offs = {big_offset}").fetchall()
    fetched = next(line for (line,) in plan if "Messages Fetched" in line).split(":")[1].strip()
    ratio = big / small
    rows_out.append(
        f"| 2 point read part = 0 AND offs = X (mock) | {MESSAGES:,}-message topic | {big * 1000:.2f} ms | | 1,000-message topic "
        f"| {small * 1000:.2f} ms | | {ratio:.2f}x (big/small) | <= 1.5x | messages fetched: {fetched} |"
    )
    log(rows_out[-1])


def pair_caught_up(session):
    """Pair 3: a caught-up (empty) topic with buffer_delay 5000 returns at once."""
    seconds, _ = median_of(lambda: session.run("SELECT count(*) FROM caught_up")[:2])
    rows_out.append(f"| 3 caught-up topic, buffer_delay 5000 (mock) | SELECT count(*) | {seconds * 1000:.2f} ms | | | | | | < 100 ms | |")
    log(rows_out[-1])


def pair_parallel(session):
    """Pair 6: parallel (2 workers) versus serial full scan with every column decoded."""
    query = "SELECT count(*) FROM csv_mock t WHERE t IS NOT NULL"
    session.execute("SET max_parallel_workers_per_gather = 0")
    serial, _ = median_of(lambda: session.run(query)[:2])
    session.execute("SET max_parallel_workers_per_gather = 2")
    session.execute("SET parallel_setup_cost = 0")
    session.execute("SET parallel_tuple_cost = 0")
    plan = "\n".join(line for (line,) in session.conn.execute(f"EXPLAIN {query}").fetchall())
    assert "Parallel Foreign Scan" in plan, plan
    parallel, _ = median_of(lambda: session.run(query)[:2])
    report("6 parallel (2 workers) vs serial scan, all columns (mock)", "parallel", parallel, "serial", serial, MESSAGES, ">= 1.6x")
    for setting in ("max_parallel_workers_per_gather", "parallel_setup_cost", "parallel_tuple_cost"):
        session.execute(f"RESET {setting}")


def pair_rss(session):
    """Pair 7: backend RSS before and after a scan of RSS_MESSAGES messages."""
    before = backend_rss_mb(session.pid)
    seconds, _, (count,) = session.run("SELECT count(*) FROM rss_mock t WHERE t IS NOT NULL")
    after = backend_rss_mb(session.pid)
    rows_out.append(
        f"| 7 backend RSS around a {count:,}-message scan (mock) | RSS after | {after:.0f} MB | {count / seconds:,.0f}/s "
        f"| RSS before | {before:.0f} MB | | +{after - before:.0f} MB | growth < 100 MB | |"
    )
    log(rows_out[-1])


def wanted(pair):
    return not PAIRS or str(pair) in PAIRS


def main():
    csv_path = write_lines(os.path.join(WORK, f"csv_{MESSAGES}.csv"), MESSAGES, csv_line)
    os.chmod(csv_path, 0o644)
    json_path = write_lines(os.path.join(WORK, f"json_{MESSAGES}.json"), MESSAGES, json_line)
    for name in ["bench_csv", "bench_json", "bench_avro", "bench_1k", "bench_empty", "bench_out", "bench_out_raw", "bench_bad", "bench_txn_out"]:
        mock_topic(name, PARTITIONS)
    mock_topic("bench_fresh", 4)
    produce(MOCK, "bench_csv", csv_path)
    if wanted(8):
        produce(MOCK, "bench_bad", write_lines(os.path.join(WORK, f"bad_{MESSAGES}.csv"), MESSAGES, bad_csv_line))
    if wanted(1):
        produce(MOCK, "bench_json", json_path)
        produce_avro("bench_avro", json_path)
        subprocess.run([TOOL, "create-topic", "--brokers", KAFKA, "--topic", "bench_csv", "--partitions", "4"], check=True, capture_output=True)
        produce(KAFKA, "bench_csv", csv_path)
    if wanted(2):
        produce(MOCK, "bench_1k", write_lines(os.path.join(WORK, "csv_1000.csv"), 1000, csv_line))

    session = Session()
    setup_database(session)

    def full_scans():
        copy = measure_copy(session, csv_path)
        pair_full_scan(session, "CSV", "csv_mock", "bench_csv", copy)
        pair_full_scan(session, "JSON", "json_mock", "bench_json", copy)
        pair_full_scan(session, "Avro", "avro_mock", "bench_avro", copy)
        pair_full_scan_kafka(session)

    def rss():
        # The RSS topic: RSS_MESSAGES over enough partitions to stay under the mock
        # cluster's ~5 MB per partition.
        rss_partitions = max(PARTITIONS, RSS_MESSAGES * 110 // 4_000_000 + 1)
        mock_topic("bench_rss", rss_partitions)
        produce(MOCK, "bench_rss", csv_path, "--repeat", str(max(1, RSS_MESSAGES // MESSAGES)))
        pair_rss(session)

    def distance():
        mock_topic("bench_far", PARTITIONS)
        produce(MOCK, "bench_far", write_lines(os.path.join(WORK, f"csv_{DISTANCE_MESSAGES}.csv"), DISTANCE_MESSAGES, csv_line))
        pair_distance(session)

    for pair, run in [
        (1, full_scans),
        (4, lambda: pair_insert(session, csv_path)),
        (13, lambda: pair_transactional_insert(session, csv_path)),
        (5, lambda: pair_import(session, csv_path)),
        (2, lambda: pair_point_read(session)),
        (3, lambda: pair_caught_up(session)),
        (6, lambda: pair_parallel(session)),
        (7, rss),
        (8, lambda: pair_bad_messages(session)),
        (9, distance),
        (10, lambda: pair_analyze(session)),
        (11, pair_freshness),
        (12, lambda: pair_upsert(session)),
        (14, pair_scheduler),
        ("codecs", pair_codecs),
    ]:
        if wanted(pair):
            pair_started = time.monotonic()
            run()
            pair_seconds.append(f"{pair}: {time.monotonic() - pair_started:.0f} s")

    title = (f"Benchmarks, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; {MESSAGES:,} messages of ~100 bytes "
             f"over {PARTITIONS} partitions; median of {RUNS} runs.")
    print()
    print(title)
    print()
    print("| pair | ours | time | rate | baseline | time | rate | ratio | goal | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows_out:
        print(row)
    print()
    print(f"Wall time {time.monotonic() - STARTED:.0f} s; per pair: {', '.join(pair_seconds)}.")
    with open(CHART, "w") as out:
        out.write(chart.svg(chart.parse(rows_out), title))
    log(f"chart: {CHART}")


if __name__ == "__main__":
    main()

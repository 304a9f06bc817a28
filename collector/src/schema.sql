-- The collector's store. A public interface: users write SQL against these names.
-- No PRIMARY KEY or UNIQUE on the fact tables (ART indexes cost memory and have failed WAL replay);
-- uniqueness of (source_id, byte_offset) is checked by the tests instead.

-- credential_requests is a view (at the end of this file) with the columns of segments.sql; the
-- base tables under it hold integers. What repeats from line to line is stored once in a
-- dictionary and referred to by id: the task ARN in request_tasks, the other parsed fields but
-- time and port in request_kinds, the client address in request_addresses, and (host, file name,
-- file identity) in request_sources. A dictionary entry is committed in the same transaction as the first rows
-- that use it. The same value may have several ids (the collector's cache of ids is bounded and
-- starts empty); ids are never shared by two values.

CREATE TABLE IF NOT EXISTS request_kinds (
    id                     BIGINT NOT NULL,
    status                 INTEGER NOT NULL,
    request_path           VARCHAR NOT NULL,
    user_agent             VARCHAR NOT NULL,
    event_type             VARCHAR,
    log_version            INTEGER,
    cluster                VARCHAR,
    container_instance_arn VARCHAR
);

CREATE TABLE IF NOT EXISTS request_tasks (
    id       BIGINT NOT NULL,
    task_arn VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS request_addresses (
    id        BIGINT NOT NULL,
    source_ip VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS request_sources (
    id          BIGINT NOT NULL,
    host        VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    source_id   VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS request_rows (
    event_time  TIMESTAMP NOT NULL,
    kind        BIGINT NOT NULL,    -- request_kinds.id
    task        BIGINT,             -- request_tasks.id; NULL when the agent wrote '-'
    address     BIGINT,             -- request_addresses.id; NULL when the agent wrote '-'
    source_port INTEGER,
    source      BIGINT NOT NULL,    -- request_sources.id
    byte_offset BIGINT NOT NULL,
    line_len    BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    incomplete  BOOLEAN NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    truncated   BOOLEAN             -- a field was cut to --max-field-bytes (request_raw has the line)
);
-- Added after the first release: existing stores get it here, at the end of the table.
ALTER TABLE request_rows ADD COLUMN IF NOT EXISTS truncated BOOLEAN;

-- The exact bytes of the few lines whose parsed text is not the whole truth (invalid UTF-8, a
-- quote in the user agent, a field cut to --max-field-bytes).
CREATE TABLE IF NOT EXISTS request_raw (
    seq BIGINT NOT NULL,
    raw BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS rejected_lines (
    source_file VARCHAR NOT NULL,
    source_id   VARCHAR NOT NULL,
    byte_offset BIGINT NOT NULL,
    line_len    BIGINT NOT NULL,
    raw         BLOB NOT NULL,      -- exact bytes (the first max-line-bytes when truncated)
    reason      VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    host        VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    incomplete  BOOLEAN NOT NULL,
    truncated   BOOLEAN NOT NULL
);

CREATE TABLE IF NOT EXISTS task_inventory (
    observed_at    TIMESTAMP NOT NULL,
    host           VARCHAR NOT NULL,
    task_arn       VARCHAR NOT NULL,
    family         VARCHAR,
    revision       VARCHAR,
    known_status   VARCHAR,
    desired_status VARCHAR,
    container_name VARCHAR,
    docker_id      VARCHAR,
    network_mode   VARCHAR,
    ipv4_address   VARCHAR,
    seq            BIGINT NOT NULL
);

-- One row per audit file the collector knows, committed in the same transaction as its rows.
CREATE TABLE IF NOT EXISTS ingest_state (
    source_id        VARCHAR NOT NULL,
    dev              BIGINT NOT NULL,
    ino              BIGINT NOT NULL,
    fp_len           INTEGER NOT NULL,
    fp_hash          BIGINT NOT NULL,
    check_hash       BIGINT,           -- hash of the bytes just before committed_offset
    path             VARCHAR NOT NULL, -- last name seen (metadata only, never identity)
    committed_offset BIGINT NOT NULL,
    size_seen        BIGINT NOT NULL,
    lines            BIGINT NOT NULL,
    rejected         BIGINT NOT NULL,
    lossy            BIGINT NOT NULL,
    incomplete       BIGINT NOT NULL,
    status           VARCHAR NOT NULL, -- active | done
    first_seen       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    last_event_time  TIMESTAMP
);

-- Bytes the collector could not read because they were gone before it got to them.
CREATE TABLE IF NOT EXISTS ingest_gaps (
    detected_at TIMESTAMP NOT NULL,
    host        VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,  -- source_lost | missing_rolls
    source_id   VARCHAR,
    path        VARCHAR,
    from_offset BIGINT,
    to_offset   BIGINT,            -- NULL when unknown
    from_time   TIMESTAMP,
    to_time     TIMESTAMP,
    detail      VARCHAR NOT NULL
);

-- Notable things that happened to sources: truncation, copies, unreadable files.
CREATE TABLE IF NOT EXISTS ingest_events (
    occurred_at TIMESTAMP NOT NULL,
    host      VARCHAR NOT NULL,
    kind      VARCHAR NOT NULL,
    source_id VARCHAR,
    path      VARCHAR,
    detail    VARCHAR NOT NULL
);

-- When the host was covered (detections.md, Terms): this collector running and tailing the
-- agent's log. One row per interval, named by (host, run_id, interval_no) and extended in place
-- (with a new seq, so segments publish it again) at every heartbeat, also when no line arrives.
-- A collector start begins a new interval; so does a gap in ingest_gaps, or the agent naming
-- another container instance. Every line written from covered_from to covered_until is stored.
-- Readers of the segments keep each interval's row with the latest covered_until (and seq).
CREATE TABLE IF NOT EXISTS collector_coverage (
    host                   VARCHAR NOT NULL,
    run_id                 VARCHAR NOT NULL,   -- one per collector start
    interval_no            INTEGER NOT NULL,   -- 1, 2, … within the run
    mode                   VARCHAR NOT NULL,   -- follow | once
    container_instance_arn VARCHAR,            -- from the agent's /v1/metadata; NULL when unreachable
    cluster                VARCHAR,            -- likewise
    covered_from           TIMESTAMP NOT NULL, -- a backlog: its first record (after any gap)
    covered_until          TIMESTAMP NOT NULL, -- when the end of the log was last read
    run_started_at         TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL,
    seq                    BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS collector_meta (
    key   VARCHAR NOT NULL,
    value VARCHAR
);

-- One row per audit line, with the columns (names, types, order) of segments.sql.
CREATE OR REPLACE VIEW credential_requests AS
SELECT r.event_time, k.status, a.source_ip, r.source_port, k.request_path, k.user_agent,
       t.task_arn, k.event_type, k.log_version, k.cluster, k.container_instance_arn,
       s.host, s.source_file, s.source_id, r.byte_offset, r.line_len, r.seq, r.incomplete,
       r.ingested_at, w.raw, coalesce(r.truncated, false) AS truncated
FROM request_rows r
-- LEFT: a row whose entry were missing would show NULLs (and fail the analyzer's NOT NULL), never vanish.
LEFT JOIN request_kinds k ON k.id = r.kind
LEFT JOIN request_sources s ON s.id = r.source
LEFT JOIN request_tasks t ON t.id = r.task
LEFT JOIN request_addresses a ON a.id = r.address
LEFT JOIN request_raw w ON w.seq = r.seq;

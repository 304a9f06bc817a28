-- The collector's store. A public interface: users write SQL against these names.
-- No PRIMARY KEY or UNIQUE on the fact tables (ART indexes cost memory and have failed WAL replay);
-- uniqueness of (source_id, byte_offset) is checked by the tests instead.

CREATE TABLE IF NOT EXISTS credential_requests (
    event_time             TIMESTAMP NOT NULL, -- UTC, whole seconds, as the agent wrote it
    status                 INTEGER NOT NULL,
    source_ip              VARCHAR,            -- NULL when the agent wrote '-'
    source_port            INTEGER,
    request_path           VARCHAR NOT NULL,
    user_agent             VARCHAR NOT NULL,   -- untrusted: chosen by whoever runs in the container
    task_arn               VARCHAR,            -- NULL for '-' (every non-200 line)
    event_type             VARCHAR,            -- NULL on short (error and 429) lines
    log_version            INTEGER,
    cluster                VARCHAR,
    container_instance_arn VARCHAR,
    host                   VARCHAR NOT NULL,   -- provenance: which collector stored the line
    source_file            VARCHAR NOT NULL,   -- the file's name when the line was read
    source_id              VARCHAR NOT NULL,   -- the file's identity (device, inode, fingerprint)
    byte_offset            BIGINT NOT NULL,    -- where the line starts in that file
    line_len               BIGINT NOT NULL,    -- bytes, without the newline
    seq                    BIGINT NOT NULL,    -- collector-wide ingest order; segments are seq ranges
    incomplete             BOOLEAN NOT NULL,   -- last line of a rolled file that never got its newline
    ingested_at            TIMESTAMP NOT NULL, -- when the collector committed the line (UTC)
    raw                    BLOB                -- exact bytes, kept when path or user agent were not valid UTF-8 or the user agent holds a double quote
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

CREATE TABLE IF NOT EXISTS collector_meta (
    key   VARCHAR NOT NULL,
    value VARCHAR
);

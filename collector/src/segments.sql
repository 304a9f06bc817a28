-- credential_requests as published: the columns of every credential_requests segment file, of
-- the collector's credential_requests view (schema.sql), and of the analyzer's table (which is
-- created from this statement). rejected_lines and task_inventory are tables in schema.sql.

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
    raw                    BLOB,               -- exact bytes, kept when path or user agent were not valid UTF-8, the user agent holds a double quote, or a field was truncated
    truncated              BOOLEAN             -- a field was longer than the collector's --max-field-bytes and is cut to it (raw has the whole line); NULL in segments of collectors older than this column
);

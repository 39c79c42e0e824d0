-- gemini-gateway schema, version 1.
-- Times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS' (GRDB's Date format): sqlite3's date functions
-- and plain string comparison both work on them.

-- Gemini API keys. The secret is kept so it can be sent upstream; everything an operator sees
-- uses the fingerprint (first 12 hex digits of SHA-256) or the tail (last 4 characters).
CREATE TABLE keys (
    id                INTEGER PRIMARY KEY,
    secret            TEXT    NOT NULL UNIQUE,
    fingerprint       TEXT    NOT NULL UNIQUE,
    tail              TEXT    NOT NULL,
    project           TEXT,
    state             TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled', 'deleted')),
    disabled_at       TEXT,
    deleted_at        TEXT,
    deleted_reason    TEXT,
    last_used_at      TEXT,
    last_throttled_at TEXT,
    throttle_streak   INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);
CREATE INDEX keys_state ON keys(state);
CREATE INDEX keys_project ON keys(project) WHERE project IS NOT NULL;
CREATE INDEX keys_updated_at ON keys(updated_at);

-- Upstream base URLs: Google itself or relays of it.
CREATE TABLE upstreams (
    id                  INTEGER PRIMARY KEY,
    base_url            TEXT    NOT NULL UNIQUE,
    state               TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled')),
    cooldown_until      TEXT,
    failure_streak      INTEGER NOT NULL DEFAULT 0,
    last_failure_at     TEXT,
    last_failure_reason TEXT,
    last_used_at        TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);
CREATE INDEX upstreams_updated_at ON upstreams(updated_at);

-- A key that must not be used for a model until `until` ('*' = every model).
CREATE TABLE key_cooldowns (
    key_id     INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    model      TEXT    NOT NULL,
    until      TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    quota_id   TEXT,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (key_id, model)
) WITHOUT ROWID;
CREATE INDEX key_cooldowns_until ON key_cooldowns(until);

-- Quotas are per Google project: a throttle seen on one labelled key cools all keys of its project.
CREATE TABLE project_cooldowns (
    project    TEXT NOT NULL,
    model      TEXT NOT NULL,
    until      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    quota_id   TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project, model)
) WITHOUT ROWID;

-- Gateway tokens that clients present. Only the SHA-256 of a token is stored.
CREATE TABLE clients (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    token_tail TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX clients_active_name ON clients(name) WHERE revoked_at IS NULL;

-- One row per client request.
--   outcome: success | client_error | throttled | key_error | upstream_error | no_capacity
--            | unauthorized | too_large | cancelled | truncated | gateway_error
--   usage_status: complete | missing | truncated | none (calls that carry no usage)
CREATE TABLE requests (
    id                 INTEGER PRIMARY KEY,
    request_id         TEXT    NOT NULL UNIQUE,
    started_at         TEXT    NOT NULL,
    client_id          INTEGER REFERENCES clients(id),
    client_name        TEXT,
    method             TEXT    NOT NULL,
    endpoint           TEXT    NOT NULL,
    api_version        TEXT,
    model              TEXT,
    is_stream          INTEGER NOT NULL DEFAULT 0,
    status             INTEGER NOT NULL,
    outcome            TEXT    NOT NULL,
    attempt_count      INTEGER NOT NULL DEFAULT 0,
    key_id             INTEGER REFERENCES keys(id),
    key_fingerprint    TEXT,
    upstream_id        INTEGER REFERENCES upstreams(id),
    upstream_url       TEXT,
    latency_ms         REAL,
    ttfb_ms            REAL,
    request_bytes      INTEGER NOT NULL DEFAULT 0,
    response_bytes     INTEGER NOT NULL DEFAULT 0,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens      INTEGER NOT NULL DEFAULT 0,
    candidates_tokens  INTEGER NOT NULL DEFAULT 0,
    thoughts_tokens    INTEGER NOT NULL DEFAULT 0,
    tool_use_tokens    INTEGER NOT NULL DEFAULT 0,
    total_tokens       INTEGER NOT NULL DEFAULT 0,
    usage_status       TEXT    NOT NULL DEFAULT 'none',
    error_status       TEXT,
    error_reason       TEXT
);
CREATE INDEX requests_started_at ON requests(started_at);
CREATE INDEX requests_client_started ON requests(client_id, started_at);
CREATE INDEX requests_model_started ON requests(model, started_at);
CREATE INDEX requests_key_started ON requests(key_id, started_at);
CREATE INDEX requests_upstream_started ON requests(upstream_id, started_at);

-- One row per upstream try of a request.
--   verdict: success | throttled | key_dead | key_unusable | upstream_blocked | client_error
--            | transient | upstream_failure | cancelled
CREATE TABLE attempts (
    id            INTEGER PRIMARY KEY,
    request_id    TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    started_at    TEXT    NOT NULL,
    key_id        INTEGER REFERENCES keys(id),
    upstream_id   INTEGER REFERENCES upstreams(id),
    status        INTEGER,
    verdict       TEXT    NOT NULL,
    google_status TEXT,
    reason        TEXT,
    quota_id      TEXT,
    latency_ms    REAL,
    UNIQUE (request_id, attempt)
);
CREATE INDEX attempts_key_started ON attempts(key_id, started_at);
CREATE INDEX attempts_upstream_started ON attempts(upstream_id, started_at);

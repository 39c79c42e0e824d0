-- gemini-gateway schema, version 4: who owns project-bound resources.
-- Files, cached contents, batches and tuned models belong to the Google project of the key that
-- created them; a resumable upload session ('uploads/' || upload_id) also to the upstream that
-- started it. Follow-up calls naming one are sent with the same key (and upstream).
--   name: 'files/abc', 'cachedContents/xyz', 'batches/123', 'tunedModels/m', 'uploads/ID'
CREATE TABLE resource_owners (
    name        TEXT    PRIMARY KEY,
    key_id      INTEGER NOT NULL REFERENCES keys(id),
    upstream_id INTEGER REFERENCES upstreams(id),
    client_id   INTEGER REFERENCES clients(id),
    created_at  TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX resource_owners_created_at ON resource_owners(created_at);

"""SQL run by SQLiteAdapter (SQLite 3.35+, for RETURNING)."""

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)

META = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""

_COLLECTIONS = """
CREATE TABLE IF NOT EXISTS collections (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    vectors     TEXT NOT NULL,
    dimension   INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""
_DOCUMENTS = """
CREATE TABLE IF NOT EXISTS {name} (
    id            INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    title         TEXT NOT NULL DEFAULT '',
    source_url    TEXT NOT NULL DEFAULT '',
    content_hash  TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (collection_id, path)
);
"""

# Schema 2: documents belong to collections, carry JSON metadata, and are unique per
# (collection, path). Schema 1 had one flat set of documents (see UPGRADE_FROM_1).
SCHEMA = (
    _COLLECTIONS
    + _DOCUMENTS.replace("{name}", "documents")
    + """
CREATE TABLE IF NOT EXISTS chunks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    ordinal     INTEGER NOT NULL,
    heading     TEXT NOT NULL DEFAULT '',
    anchor      TEXT NOT NULL DEFAULT '',
    text        TEXT NOT NULL,
    token_count INTEGER NOT NULL,
    embedding   BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document_id ON chunks(document_id);
-- Schema 5: each chunk's index terms, space-separated, from which the in-memory postings
-- are built at open and unbuilt when the chunk goes. Schema 4 and before kept them in an
-- FTS5 table that nothing queried: its inverted index cost 0.15 ms per chunk at ingest.
CREATE TABLE IF NOT EXISTS chunk_terms (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    terms    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS click_feedback (
    id          INTEGER PRIMARY KEY,
    query       TEXT NOT NULL,
    query_key   TEXT NOT NULL,
    chunk_id    INTEGER REFERENCES chunks(id) ON DELETE SET NULL,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    session_id  TEXT NOT NULL DEFAULT '',
    user_id     TEXT NOT NULL DEFAULT '',
    dwell_time  REAL NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    key_id      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS click_feedback_query ON click_feedback(query);
CREATE INDEX IF NOT EXISTS click_feedback_query_key ON click_feedback(query_key);
CREATE INDEX IF NOT EXISTS click_feedback_session_id ON click_feedback(session_id);
CREATE INDEX IF NOT EXISTS click_feedback_document_id ON click_feedback(document_id);
CREATE INDEX IF NOT EXISTS click_feedback_chunk_id ON click_feedback(chunk_id);
"""
)

# Schema 1 → 2: SQLite cannot drop the old UNIQUE (path), so the documents table is rebuilt
# under the same ids (SQLite's documented twelve-step ALTER). Run with foreign keys off, or
# dropping the old table would cascade to every chunk and click; their REFERENCES documents
# then name the new table.
UPGRADE_FROM_1 = (
    _COLLECTIONS
    + """
INSERT INTO collections (id, name, vectors, dimension)
SELECT 1, 'default', 'model', CAST(value AS INTEGER) FROM meta WHERE key = 'embedding_dimension';
"""
    + _DOCUMENTS.replace("{name}", "documents_v2")
    + """
INSERT INTO documents_v2 (id, collection_id, path, title, source_url, content_hash, created_at,
                          updated_at)
SELECT id, 1, path, title, source_url, content_hash, created_at, updated_at FROM documents;
DROP TABLE documents;
ALTER TABLE documents_v2 RENAME TO documents;
"""
)

GET_META = "SELECT value FROM meta WHERE key = ?"
SET_META = """
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

INSERT_DEFAULT_COLLECTION = """
INSERT INTO collections (id, name, vectors, dimension) VALUES (1, 'default', 'model', ?)
ON CONFLICT DO NOTHING
"""
_COLLECTION_COLUMNS = """
    c.id, c.name, c.vectors, c.dimension, c.description, c.created_at,
    (SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id),
    (SELECT COUNT(*) FROM chunks k JOIN documents d ON d.id = k.document_id
     WHERE d.collection_id = c.id)
"""
GET_COLLECTION = f"SELECT {_COLLECTION_COLUMNS} FROM collections c WHERE c.name = ?"
LIST_COLLECTIONS = f"SELECT {_COLLECTION_COLUMNS} FROM collections c ORDER BY c.name"
ALL_COLLECTIONS = "SELECT id, name, vectors, dimension, description, created_at FROM collections"
INSERT_COLLECTION = """
INSERT INTO collections (name, vectors, dimension, description) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING RETURNING id, created_at
"""
DELETE_COLLECTION = "DELETE FROM collections WHERE id = ?"
DOCUMENT_IDS_OF_COLLECTION = "SELECT id FROM documents WHERE collection_id = ?"

GET_HASHES = """
SELECT path, content_hash FROM documents
WHERE collection_id = ? AND path IN (SELECT value FROM json_each(?))
"""
GET_DOCUMENT_ID = "SELECT id FROM documents WHERE collection_id = ? AND path = ?"
DOCUMENT_IDS_OF_PATHS = """
SELECT path, id FROM documents
WHERE collection_id = ? AND path IN (SELECT value FROM json_each(?))
"""
# A batch's new documents are inserted under ids chosen in its write transaction, as
# SQLite itself would choose them (one past the largest), so that one statement inserts
# them all and their chunks can name them.
NEXT_DOCUMENT_ID = "SELECT COALESCE(MAX(id), 0) + 1 FROM documents"
INSERT_DOCUMENT = """
INSERT INTO documents (id, collection_id, path, title, source_url, content_hash, metadata)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
UPDATE_DOCUMENT = """
UPDATE documents
SET title = ?, source_url = ?, content_hash = ?, metadata = ?, updated_at = CURRENT_TIMESTAMP
WHERE id = ?
"""
DOCUMENT_COLUMNS = """
    d.path, d.title, d.source_url, d.content_hash, d.metadata,
    (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id), d.updated_at
"""
GET_DOCUMENT = f"""
SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.collection_id = ? AND d.path = ?
"""
# {where} is a compiled filter (see filter_sql): column names and placeholders only.
LIST_DOCUMENTS = """
SELECT {columns} FROM documents d
WHERE d.collection_id = ? AND d.path > ? AND {where}
ORDER BY d.path LIMIT ?
"""
MATCHING_DOCUMENT_IDS = "SELECT d.id FROM documents d WHERE d.collection_id = ? AND {where}"

CHUNK_TERMS_OF_DOCUMENTS = """
SELECT t.chunk_id, t.terms FROM chunk_terms t JOIN chunks c ON c.id = t.chunk_id
WHERE c.document_id IN (SELECT value FROM json_each(?))
"""
ALL_CHUNK_TERMS = """
SELECT t.chunk_id, d.collection_id, t.terms FROM chunk_terms t
JOIN chunks c ON c.id = t.chunk_id JOIN documents d ON d.id = c.document_id
"""
# Their terms go with them (ON DELETE CASCADE).
DELETE_CHUNKS_OF_DOCUMENTS = (
    "DELETE FROM chunks WHERE document_id IN (SELECT value FROM json_each(?))"
)
# AUTOINCREMENT never hands out an id twice, even after the newest chunks are deleted.
NEXT_CHUNK_ID = """
SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'chunks'), 0) + 1
"""
INSERT_CHUNK = """
INSERT INTO chunks (id, document_id, path, ordinal, heading, anchor, text, token_count, embedding)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_CHUNK_TERMS = "INSERT INTO chunk_terms (chunk_id, terms) VALUES (?, ?)"
DELETE_DOCUMENTS = "DELETE FROM documents WHERE id IN (SELECT value FROM json_each(?))"

ALL_EMBEDDINGS = """
SELECT c.id, d.collection_id, c.embedding, c.document_id
FROM chunks c JOIN documents d ON d.id = c.document_id
ORDER BY c.id
"""

_HIT_COLUMNS = """
    c.id, c.document_id, c.path, d.title, d.source_url, c.heading, c.anchor, c.text, d.metadata
"""

CHUNKS_BY_IDS = f"""
SELECT {_HIT_COLUMNS}
FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE c.id IN (SELECT value FROM json_each(?))
"""

DOCUMENT_OF_CHUNK = "SELECT document_id FROM chunks WHERE id = ?"
INSERT_CLICK = """
INSERT INTO click_feedback
    (query, query_key, chunk_id, document_id, position, session_id, user_id, dwell_time, key_id,
     impression, source, weight, outcome)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
"""
# The counted clicks a new click is judged against, in its document's collection (its write
# transaction holds SQLite's one writer lock, so two clicks cannot both slip under a cap).
COUNT_CLICKS = """
SELECT coalesce(max(f.document_id = :document AND ((:session <> '' AND session_id = :session)
                                                    OR (:impression <> ''
                                                        AND impression = :impression))), 0),
       total(:session <> '' AND session_id = :session),
       total(:user <> '' AND user_id = :user),
       total(:key <> '' AND key_id = :key)
FROM click_feedback f JOIN documents d ON d.id = f.document_id
WHERE f.query_key = :query_key AND f.outcome = 'counted'
  AND d.collection_id = (SELECT collection_id FROM documents WHERE id = :document)
"""
HAS_CLICKS = """
SELECT EXISTS (SELECT 1 FROM click_feedback WHERE query_key = ? AND outcome = 'counted')
"""
# Per source and clicked document of the query in the collection, the summed vote; for the
# candidate chunks of those documents, with the number of sources.
CLICK_EVIDENCE = """
WITH votes AS (
    SELECT f.document_id, f.source, sum(f.weight) AS vote
    FROM click_feedback f
    JOIN documents d ON d.id = f.document_id
    JOIN collections k ON k.id = d.collection_id
    WHERE f.query_key = :query_key AND f.outcome = 'counted' AND k.name = :collection
    GROUP BY f.document_id, f.source
)
SELECT (SELECT count(DISTINCT source) FROM votes), c.id, c.document_id,
       (SELECT count(*) FROM click_feedback o
        WHERE o.query_key = :query_key AND o.outcome = 'counted' AND o.chunk_id = c.id),
       votes.vote
FROM votes JOIN chunks c ON c.document_id = votes.document_id
WHERE c.id IN (SELECT value FROM json_each(:chunk_ids))
"""

COUNTS = """
SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks),
       (SELECT COUNT(*) FROM click_feedback)
"""
COUNT_CLICKS_OF_DOCUMENTS = """
SELECT COUNT(*) FROM click_feedback WHERE document_id IN (SELECT value FROM json_each(?))
"""

EXPORT_DOCUMENTS = """
SELECT d.id, c.name, d.path, d.title, d.source_url, d.content_hash, d.metadata
FROM documents d JOIN collections c ON c.id = d.collection_id ORDER BY d.id
"""
EXPORT_CHUNKS = """
SELECT heading, anchor, text, embedding FROM chunks WHERE document_id = ? ORDER BY ordinal
"""
EXPORT_CLICKS = """
SELECT f.id, f.query, f.query_key, (SELECT name FROM collections WHERE id = d.collection_id),
       d.path, c.ordinal, f.position, f.session_id, f.user_id,
       f.dwell_time, f.created_at, f.outcome, f.source, f.weight, f.impression, f.key_id
FROM click_feedback f
JOIN documents d ON d.id = f.document_id
LEFT JOIN chunks c ON c.id = f.chunk_id
ORDER BY f.id
"""
IMPORT_CLICK = """
INSERT INTO click_feedback (id, query, query_key, chunk_id, document_id, position, session_id,
                            user_id, dwell_time, created_at, outcome, source, weight,
                            impression, key_id)
SELECT :id, :query, :query_key,
       (SELECT c.id FROM chunks c WHERE c.document_id = d.id AND c.ordinal = :ordinal),
       d.id, :position, :session_id, :user_id, :dwell_time, :created_at, :outcome, :source,
       :weight, :impression, :key_id
FROM documents d JOIN collections k ON k.id = d.collection_id
WHERE d.path = :path AND k.name = :collection
ON CONFLICT (id) DO NOTHING
"""

# Schema 3: API keys (their secrets' SHA-256 only), and clicks name the key that sent them.
API_KEYS = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    collections TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    revoked_at  TEXT NOT NULL DEFAULT ''
)
"""
CLICK_COLUMNS = "SELECT name FROM pragma_table_info('click_feedback')"
ADD_CLICK_KEY = "ALTER TABLE click_feedback ADD COLUMN key_id TEXT NOT NULL DEFAULT ''"
# Schema 4: what the click model made of each click (docfoundry_grpc/feedback.py).
CLICK_MODEL_COLUMNS = {
    "impression": "ALTER TABLE click_feedback ADD COLUMN impression TEXT NOT NULL DEFAULT ''",
    "source": "ALTER TABLE click_feedback ADD COLUMN source TEXT NOT NULL DEFAULT ''",
    "weight": "ALTER TABLE click_feedback ADD COLUMN weight REAL NOT NULL DEFAULT 0",
    "outcome": (
        "ALTER TABLE click_feedback ADD COLUMN outcome TEXT NOT NULL DEFAULT 'no_impression'"
    ),
}
CLICK_COUNTED_INDEX = """
CREATE INDEX IF NOT EXISTS click_feedback_counted ON click_feedback(query_key, document_id)
    WHERE outcome = 'counted'
"""
INSERT_API_KEY = """
INSERT INTO api_keys (key_id, name, secret_hash, scopes, collections) VALUES (?, ?, ?, ?, ?)
"""
_KEY_COLUMNS = "key_id, name, secret_hash, scopes, collections, created_at, revoked_at"
GET_API_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?"
LIST_API_KEYS = f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id"
REVOKE_API_KEY = """
UPDATE api_keys SET revoked_at = strftime('%Y-%m-%d %H:%M:%S', 'now')
WHERE key_id = ? AND revoked_at = ''
"""

# Learned rankers ---------------------------------------------------------------------------
RANKER_MODELS = """
CREATE TABLE IF NOT EXISTS ranker_models (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    live          INTEGER NOT NULL DEFAULT 0,
    model         TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (collection_id, version)
)
"""
# Per query, source and document of a collection, the counted votes (for training).
CLICK_HISTORY = """
WITH grouped AS (
    SELECT f.query_key, min(f.id) AS first_id, f.source, f.document_id, sum(f.weight) AS vote
    FROM click_feedback f
    JOIN documents d ON d.id = f.document_id
    JOIN collections k ON k.id = d.collection_id
    WHERE f.outcome = 'counted' AND k.name = ?
    GROUP BY f.query_key, f.source, f.document_id
)
SELECT g.query_key, g.first_id, g.source, g.document_id, g.vote, c.query
FROM grouped g JOIN click_feedback c ON c.id = g.first_id
"""
COLLECTION_ID = "SELECT id FROM collections WHERE name = ?"
RETIRE_RANKERS = "UPDATE ranker_models SET live = 0 WHERE collection_id = ? AND live"
INSERT_RANKER = """
INSERT INTO ranker_models (collection_id, version, live, model)
SELECT :collection, coalesce(max(version), 0) + 1, :live, :model FROM ranker_models
WHERE collection_id = :collection
RETURNING version
"""
LIVE_RANKERS = """
SELECT k.name, r.version FROM ranker_models r JOIN collections k ON k.id = r.collection_id
WHERE r.live
"""
RANKER_MODEL = """
SELECT r.model FROM ranker_models r JOIN collections k ON k.id = r.collection_id
WHERE k.name = ? AND r.version = ?
"""

# Schema 4 → 5: the terms move out of FTS5 into chunk_terms (run in one transaction).
HAS_FTS_TERMS = "SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts'"
MOVE_FTS_TERMS = """
INSERT INTO chunk_terms (chunk_id, terms)
SELECT rowid, terms FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks);
DROP TABLE chunks_fts;
"""

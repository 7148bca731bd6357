"""SQL run by SQLiteAdapter (SQLite 3.35+ with FTS5)."""

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id           INTEGER PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL DEFAULT '',
    source_url   TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL,
    created_at   TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at   TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
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
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    terms, tokenize = 'unicode61 remove_diacritics 0'
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
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS click_feedback_query ON click_feedback(query);
CREATE INDEX IF NOT EXISTS click_feedback_query_key ON click_feedback(query_key);
CREATE INDEX IF NOT EXISTS click_feedback_session_id ON click_feedback(session_id);
CREATE INDEX IF NOT EXISTS click_feedback_document_id ON click_feedback(document_id);
CREATE INDEX IF NOT EXISTS click_feedback_chunk_id ON click_feedback(chunk_id);
"""

GET_META = "SELECT value FROM meta WHERE key = ?"
SET_META = """
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

GET_HASH = "SELECT content_hash FROM documents WHERE path = ?"
GET_DOCUMENT_ID = "SELECT id FROM documents WHERE path = ?"
INSERT_DOCUMENT = """
INSERT INTO documents (path, title, source_url, content_hash) VALUES (?, ?, ?, ?) RETURNING id
"""
UPDATE_DOCUMENT = """
UPDATE documents SET title = ?, source_url = ?, content_hash = ?, updated_at = CURRENT_TIMESTAMP
WHERE id = ?
"""
CHUNK_TERMS_OF_DOCUMENT = """
SELECT rowid, terms FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE document_id = ?)
"""
ALL_CHUNK_TERMS = "SELECT rowid, terms FROM chunks_fts"
DELETE_FTS_OF_DOCUMENT = (
    "DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE document_id = ?)"
)
DELETE_CHUNKS_OF_DOCUMENT = "DELETE FROM chunks WHERE document_id = ?"
# AUTOINCREMENT never hands out an id twice, even after the newest chunks are deleted.
NEXT_CHUNK_ID = """
SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'chunks'), 0) + 1
"""
INSERT_CHUNK = """
INSERT INTO chunks (id, document_id, path, ordinal, heading, anchor, text, token_count, embedding)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_FTS = "INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)"
COUNT_CLICKS_OF_DOCUMENT = "SELECT COUNT(*) FROM click_feedback WHERE document_id = ?"
DELETE_DOCUMENT = "DELETE FROM documents WHERE id = ?"

ALL_EMBEDDINGS = "SELECT id, path, embedding FROM chunks ORDER BY id"

_HIT_COLUMNS = """
    c.id, c.document_id, c.path, d.title, d.source_url, c.heading, c.anchor, c.text
"""

# Unfiltered queries rank in memory (see posting_index.py). With a path filter, FTS5 ranks:
# bm25() is negative (lower is better) and the API reports the positive score; the filter
# must apply before the LIMIT, so every match is joined.
SEARCH_FULLTEXT_PREFIX = f"""
SELECT {_HIT_COLUMNS}, -bm25(chunks_fts) AS score
FROM chunks_fts
JOIN chunks c ON c.id = chunks_fts.rowid
JOIN documents d ON d.id = c.document_id
WHERE chunks_fts MATCH :match AND substr(c.path, 1, length(:prefix)) = :prefix
ORDER BY bm25(chunks_fts), c.id
LIMIT :limit
"""

CHUNKS_BY_IDS = f"""
SELECT {_HIT_COLUMNS}
FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE c.id IN (SELECT value FROM json_each(?))
"""

DOCUMENT_OF_CHUNK = "SELECT document_id FROM chunks WHERE id = ?"
INSERT_CLICK = """
INSERT INTO click_feedback
    (query, query_key, chunk_id, document_id, position, session_id, user_id, dwell_time)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
"""
HAS_CLICKS = "SELECT EXISTS (SELECT 1 FROM click_feedback WHERE query_key = ?)"
DOCUMENT_CLICKS = """
SELECT c.id, c.document_id, clicked.clicks
FROM (SELECT document_id, COUNT(*) AS clicks FROM click_feedback WHERE query_key = ?
      GROUP BY document_id) AS clicked
JOIN chunks c ON c.document_id = clicked.document_id
WHERE c.id IN (SELECT value FROM json_each(?))
"""

COUNTS = """
SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks),
       (SELECT COUNT(*) FROM click_feedback)
"""

EXPORT_DOCUMENTS = "SELECT id, path, title, source_url, content_hash FROM documents ORDER BY id"
EXPORT_CHUNKS = """
SELECT heading, anchor, text, embedding FROM chunks WHERE document_id = ? ORDER BY ordinal
"""
EXPORT_CLICKS = """
SELECT f.id, f.query, f.query_key, d.path, c.ordinal, f.position, f.session_id, f.user_id,
       f.dwell_time, f.created_at
FROM click_feedback f
JOIN documents d ON d.id = f.document_id
LEFT JOIN chunks c ON c.id = f.chunk_id
ORDER BY f.id
"""
IMPORT_CLICK = """
INSERT INTO click_feedback (id, query, query_key, chunk_id, document_id, position, session_id,
                            user_id, dwell_time, created_at)
SELECT :id, :query, :query_key,
       (SELECT c.id FROM chunks c WHERE c.document_id = d.id AND c.ordinal = :ordinal),
       d.id, :position, :session_id, :user_id, :dwell_time, :created_at
FROM documents d WHERE d.path = :path
ON CONFLICT (id) DO NOTHING
"""

"""SQL run by PostgresAdapter (PostgreSQL 13+ with pgvector 0.8+).

Full-text ranking is BM25 computed from a postings table (term, chunk, term frequency, chunk
length) plus per-term document frequencies, with SQLite FTS5's exact formula, so both
backends rank the same chunks in the same order. `ts_rank` has no IDF and ranks far worse.

`postings` is the truth and takes every write. Compaction copies it into one packed row
per term (`posting_segments`, chunks up to `segment_state.through`), which a query reads in
one index probe per term and scores in numpy (see `..bm25`). A query adds the rows written
since (the tail) and drops chunks deleted since (`segment_tombstones`), so it is exact at
any time; compaction only makes it faster.
"""

from ..bm25 import BM25_B, BM25_K1

INIT_LOCK = "SELECT pg_advisory_xact_lock(7240211)"
CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS vector"


def schema(dimension: int) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id           bigserial PRIMARY KEY,
    path         text NOT NULL UNIQUE,
    title        text NOT NULL DEFAULT '',
    source_url   text NOT NULL DEFAULT '',
    content_hash text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS chunks (
    id          bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    path        text NOT NULL,
    ordinal     integer NOT NULL,
    heading     text NOT NULL DEFAULT '',
    anchor      text NOT NULL DEFAULT '',
    text        text NOT NULL,
    token_count integer NOT NULL,
    embedding   vector({dimension}) NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document_id ON chunks(document_id);
CREATE TABLE IF NOT EXISTS postings (
    term     text NOT NULL,
    chunk_id bigint NOT NULL,
    tf       integer NOT NULL,
    dl       integer NOT NULL,
    PRIMARY KEY (term, chunk_id) INCLUDE (tf, dl)
);
CREATE INDEX IF NOT EXISTS postings_chunk_id ON postings(chunk_id);
-- Writers delete a chunk's postings with the chunk. A foreign key would check every
-- posting row as it is copied in, about a sixth of a bulk load's database time.
ALTER TABLE postings DROP CONSTRAINT IF EXISTS postings_chunk_id_fkey;
CREATE TABLE IF NOT EXISTS term_stats (
    term text PRIMARY KEY,
    df   integer NOT NULL
);
CREATE TABLE IF NOT EXISTS posting_segments (
    term      text PRIMARY KEY,
    chunk_ids bytea NOT NULL,
    tfs       bytea NOT NULL,
    dls       bytea NOT NULL
);
-- Every packed row gets a new version, so a server may keep a decoded copy and ask only
-- for the rows whose version it does not hold.
CREATE SEQUENCE IF NOT EXISTS posting_segment_versions;
ALTER TABLE posting_segments
    ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT nextval('posting_segment_versions');
-- Packed arrays do not compress, and pglz trying costs every read.
ALTER TABLE posting_segments
    ALTER COLUMN chunk_ids SET STORAGE EXTERNAL,
    ALTER COLUMN tfs SET STORAGE EXTERNAL,
    ALTER COLUMN dls SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS segment_state (
    id       integer PRIMARY KEY CHECK (id = 1),
    through  bigint NOT NULL,
    building bigint NOT NULL
);
INSERT INTO segment_state VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS segment_tombstones (
    seq      bigserial NOT NULL,
    term     text NOT NULL,
    chunk_id bigint NOT NULL,
    PRIMARY KEY (term, chunk_id)
);
CREATE TABLE IF NOT EXISTS corpus_stats (
    id          integer PRIMARY KEY CHECK (id = 1),
    chunk_count bigint NOT NULL,
    token_count bigint NOT NULL
);
INSERT INTO corpus_stats VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS click_feedback (
    id          bigserial PRIMARY KEY,
    query       text NOT NULL,
    query_key   text NOT NULL,
    chunk_id    bigint REFERENCES chunks(id) ON DELETE SET NULL,
    document_id bigint NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position    integer NOT NULL,
    session_id  text NOT NULL DEFAULT '',
    user_id     text NOT NULL DEFAULT '',
    dwell_time  double precision NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS click_feedback_query ON click_feedback(query);
CREATE INDEX IF NOT EXISTS click_feedback_query_key ON click_feedback(query_key);
CREATE INDEX IF NOT EXISTS click_feedback_session_id ON click_feedback(session_id);
CREATE INDEX IF NOT EXISTS click_feedback_document_id ON click_feedback(document_id);
CREATE INDEX IF NOT EXISTS click_feedback_chunk_id ON click_feedback(chunk_id);
"""


def hnsw_index(m: int, ef_construction: int) -> str:
    return f"""
DROP INDEX IF EXISTS chunks_embedding_ivfflat;
CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks
    USING hnsw (embedding vector_cosine_ops)
    WITH (m = {int(m)}, ef_construction = {int(ef_construction)});
"""


NO_VECTOR_INDEX = """
DROP INDEX IF EXISTS chunks_embedding_hnsw;
DROP INDEX IF EXISTS chunks_embedding_ivfflat;
"""

# An index built over rows already stored is many times faster than the same rows
# inserted into it one by one, provided the graph fits in this memory (pgvector warns
# and slows down when it does not). SET LOCAL: it lasts for the schema transaction only.
BUILD_MEMORY = "SELECT set_config('maintenance_work_mem', $1, true)"

# The rows a CREATE INDEX IF NOT EXISTS is about to index: none when the index exists.
ROWS_TO_INDEX = """
SELECT CASE WHEN to_regclass($1) IS NULL THEN (SELECT count(*) FROM chunks) ELSE 0 END
"""

# The vector index's size against the buffer cache that should hold it (NULL: no index).
VECTOR_INDEX_MEMORY = """
SELECT pg_relation_size(to_regclass($1)) AS index_bytes,
       pg_size_pretty(pg_relation_size(to_regclass($1))) AS index_size,
       pg_size_bytes(current_setting('shared_buffers')) AS buffer_bytes,
       current_setting('shared_buffers') AS buffer_size
"""

INDEX_BUILD_PROGRESS = """
SELECT phase,
       CASE WHEN tuples_total > 0 THEN tuples_done ELSE blocks_done END,
       CASE WHEN tuples_total > 0 THEN tuples_total ELSE blocks_total END
FROM pg_stat_progress_create_index WHERE relid = 'chunks'::regclass
"""


def ivfflat_index(lists: int) -> str:
    return f"""
DROP INDEX IF EXISTS chunks_embedding_hnsw;
CREATE INDEX IF NOT EXISTS chunks_embedding_ivfflat ON chunks
    USING ivfflat (embedding vector_cosine_ops) WITH (lists = {int(lists)});
"""


GET_META = "SELECT value FROM meta WHERE key = $1"
SET_META = """
INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

GET_HASH = "SELECT content_hash FROM documents WHERE path = $1"
GET_DOCUMENT_ID = "SELECT id FROM documents WHERE path = $1 FOR UPDATE"
# xmax = 0 only on a freshly inserted row: tells a create from a replace in one statement.
# Sorted by path so concurrent batches lock document rows in one order.
UPSERT_DOCUMENTS = """
INSERT INTO documents AS d (path, title, source_url, content_hash)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ORDER BY 1
ON CONFLICT (path) DO UPDATE
    SET title = excluded.title, source_url = excluded.source_url,
        content_hash = excluded.content_hash, updated_at = now()
RETURNING d.path, d.id, (d.xmax = 0) AS created
"""
OLD_TERM_COUNTS = """
SELECT p.term, count(*)::int FROM postings p JOIN chunks c ON c.id = p.chunk_id
WHERE c.document_id = ANY($1::bigint[]) GROUP BY p.term
"""
OLD_CHUNK_TOTALS = """
SELECT count(*), coalesce(sum(token_count), 0) FROM chunks WHERE document_id = ANY($1::bigint[])
"""
DELETE_POSTINGS_OF_DOCUMENTS = """
DELETE FROM postings p USING chunks c
WHERE c.id = p.chunk_id AND c.document_id = ANY($1::bigint[])
"""
DELETE_CHUNKS_OF_DOCUMENTS = "DELETE FROM chunks WHERE document_id = ANY($1::bigint[])"
NEXT_CHUNK_IDS = "SELECT nextval('chunks_id_seq') FROM generate_series(1, $1)"
CHUNK_COLUMNS = (
    "id",
    "document_id",
    "path",
    "ordinal",
    "heading",
    "anchor",
    "text",
    "token_count",
    "embedding",
)
POSTING_COLUMNS = ("term", "chunk_id", "tf", "dl")
# Sorted by term so concurrent writers lock term rows in one order and cannot deadlock.
APPLY_DF_DELTAS = """
INSERT INTO term_stats AS t (term, df)
SELECT term, delta FROM unnest($1::text[], $2::int[]) AS u(term, delta) ORDER BY term
ON CONFLICT (term) DO UPDATE SET df = t.df + excluded.df
"""
DROP_EMPTY_TERMS = "DELETE FROM term_stats WHERE term = ANY($1::text[]) AND df <= 0"
APPLY_CORPUS_DELTA = """
UPDATE corpus_stats SET chunk_count = chunk_count + $1, token_count = token_count + $2
WHERE id = 1
"""
# Writers share this lock and compaction takes it alone for a moment, so the chunk ids it
# is about to pack belong to committed writes only (see START_BUILD).
WRITE_LOCK = "SELECT pg_advisory_xact_lock_shared(7240212)"
# Packed postings of a replaced or deleted chunk stay until compaction; queries skip them.
# A chunk being packed right now counts as packed: its tombstone must outlive that build.
TOMBSTONE_CHUNKS_OF_DOCUMENTS = """
INSERT INTO segment_tombstones (term, chunk_id)
SELECT p.term, p.chunk_id
FROM postings p JOIN chunks c ON c.id = p.chunk_id CROSS JOIN segment_state s
WHERE c.document_id = ANY($1::bigint[]) AND p.chunk_id <= greatest(s.through, s.building)
ON CONFLICT DO NOTHING
"""
COUNT_CLICKS_OF_DOCUMENT = "SELECT count(*) FROM click_feedback WHERE document_id = $1"
DELETE_DOCUMENT = "DELETE FROM documents WHERE id = $1"

_HIT_COLUMNS = "c.id, c.document_id, c.path, d.title, d.source_url, c.heading, c.anchor, c.text"

# FTS5's bm25(): idf = ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6, k1 = 1.2, b = 0.75.
# Per posting this is weight * tf / (tf + c0 + c1 * dl), with weight = idf * (k1 + 1),
# c0 = k1 * (1 - b) and c1 = k1 * b / avgdl folded per term: the per-posting arithmetic is
# what an OR of common terms repeats ~10^5 times. Every constant is float8, because a bare
# 0.75 is numeric in PostgreSQL, and numeric arithmetic per posting doubled the query time.
# A path filter needs each posting's chunk, so a filtered query ranks in SQL over `postings`.
SEARCH_FULLTEXT_PREFIX = f"""
WITH stats AS (
    SELECT chunk_count::float8 AS n,
           greatest(token_count::float8 / nullif(chunk_count, 0), 1e-9) AS avgdl
    FROM corpus_stats WHERE id = 1
), query AS (
    SELECT t.term,
           greatest(ln((s.n - t.df + 0.5::float8) / (t.df + 0.5::float8)), 1e-6::float8)
               * {BM25_K1 + 1}::float8 AS weight,
           {BM25_K1 * (1 - BM25_B)}::float8 AS c0,
           {BM25_K1 * BM25_B}::float8 / s.avgdl AS c1
    FROM term_stats t, stats s WHERE t.term = ANY($1::text[])
), scored AS (
    SELECT p.chunk_id, sum(q.weight * p.tf / (p.tf + q.c0 + q.c1 * p.dl)) AS score
    FROM query q JOIN postings p ON p.term = q.term
    JOIN chunks fc ON fc.id = p.chunk_id AND starts_with(fc.path, $3)
    GROUP BY p.chunk_id
    ORDER BY score DESC, p.chunk_id
    LIMIT $2
)
SELECT {_HIT_COLUMNS}, scored.score
FROM scored JOIN chunks c ON c.id = scored.chunk_id JOIN documents d ON d.id = c.document_id
ORDER BY scored.score DESC, c.id
"""

# One statement, so one snapshot: per query term its df, its packed segment and its tail
# packed the same way (int8send/int4send are big-endian), with the corpus totals and the
# chunks deleted since compaction. Uncorrelated subqueries run once, not per row. $2 holds
# the segment version the caller has cached per term (0 for none); those segments come back
# as NULL, unread, with their version.
TERM_POSTINGS = """
SELECT t.term, t.df, s.version AS segment_version, sent.chunk_ids, sent.tfs, sent.dls,
       tail.chunk_ids AS tail_chunk_ids, tail.tfs AS tail_tfs, tail.dls AS tail_dls,
       (SELECT chunk_count FROM corpus_stats WHERE id = 1) AS chunk_count,
       (SELECT token_count FROM corpus_stats WHERE id = 1) AS token_count,
       ARRAY(SELECT DISTINCT chunk_id FROM segment_tombstones WHERE term = ANY($1::text[]))
           AS deleted
FROM unnest($1::text[], $2::bigint[]) AS q(term, cached_version)
JOIN term_stats t ON t.term = q.term
CROSS JOIN segment_state state
LEFT JOIN posting_segments s ON s.term = t.term
LEFT JOIN LATERAL (
    SELECT s.chunk_ids, s.tfs, s.dls WHERE s.version IS DISTINCT FROM q.cached_version
) sent ON true
CROSS JOIN LATERAL (
    SELECT string_agg(int8send(p.chunk_id), ''::bytea) AS chunk_ids,
           string_agg(int4send(p.tf), ''::bytea) AS tfs,
           string_agg(int4send(p.dl), ''::bytea) AS dls
    FROM postings p WHERE p.term = t.term AND p.chunk_id > state.through
) tail
"""
CHUNKS_BY_IDS = f"""
SELECT {_HIT_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE c.id = ANY($1::bigint[])
"""

# Compaction. One compactor at a time, across every server on the database:
COMPACTOR_LOCK = "SELECT pg_try_advisory_lock(7240213)"
COMPACTOR_UNLOCK = "SELECT pg_advisory_unlock(7240213)"
# Chunks written since the last build, chunks deleted since, and the chunk total.
SEGMENT_BACKLOG = """
SELECT (SELECT count(*) FROM chunks c WHERE c.id > s.through),
       (SELECT count(DISTINCT chunk_id) FROM segment_tombstones),
       (SELECT chunk_count FROM corpus_stats WHERE id = 1)
FROM segment_state s WHERE s.id = 1
"""
# Taken alone, the write lock waits out every write in flight; once it is held, every chunk
# id up to the newest is committed, and later writers draw larger ids from the sequence.
# (Two statements: under READ COMMITTED the second one's snapshot follows the wait.)
DRAIN_WRITES = "SELECT pg_advisory_xact_lock(7240212)"
START_BUILD = """
UPDATE segment_state SET building = (SELECT coalesce(max(id), 0) FROM chunks)
WHERE id = 1 RETURNING through, building
"""
# The build reads one snapshot (REPEATABLE READ), so the tombstones it clears are exactly
# those whose chunks its segments leave out; later tombstones stay for the chunks it packed.
LAST_TOMBSTONE = "SELECT coalesce(max(seq), 0) FROM segment_tombstones"
# A term that lost a chunk is rebuilt from `postings`; every other term the new chunks touch
# gets their postings appended, which keeps it sorted (new chunks have larger ids) and costs
# the tail's rows, not the term's. Rebuilding those too made a load from zero pack about
# ten times its final size, since each compaction repacked every common term whole.
TOMBSTONED_TERMS = "SELECT DISTINCT term FROM segment_tombstones"
DROP_SEGMENTS = "DELETE FROM posting_segments WHERE term = ANY($1::text[])"
BUILD_SEGMENTS = """
INSERT INTO posting_segments (term, chunk_ids, tfs, dls)
SELECT p.term,
       string_agg(int8send(p.chunk_id), ''::bytea ORDER BY p.chunk_id),
       string_agg(int4send(p.tf), ''::bytea ORDER BY p.chunk_id),
       string_agg(int4send(p.dl), ''::bytea ORDER BY p.chunk_id)
FROM postings p JOIN unnest($1::text[]) AS stale(term) ON stale.term = p.term
WHERE p.chunk_id <= $2
GROUP BY p.term
"""
APPEND_SEGMENTS = """
WITH tail AS (
    SELECT p.term,
           string_agg(int8send(p.chunk_id), ''::bytea ORDER BY p.chunk_id) AS chunk_ids,
           string_agg(int4send(p.tf), ''::bytea ORDER BY p.chunk_id) AS tfs,
           string_agg(int4send(p.dl), ''::bytea ORDER BY p.chunk_id) AS dls
    FROM postings p
    WHERE p.chunk_id > $1 AND p.chunk_id <= $2
      AND NOT EXISTS (SELECT 1 FROM segment_tombstones t WHERE t.term = p.term)
    GROUP BY p.term
), appended AS (
    INSERT INTO posting_segments AS s (term, chunk_ids, tfs, dls)
    SELECT term, chunk_ids, tfs, dls FROM tail
    ON CONFLICT (term) DO UPDATE
    SET chunk_ids = s.chunk_ids || excluded.chunk_ids,
        tfs = s.tfs || excluded.tfs,
        dls = s.dls || excluded.dls,
        version = nextval('posting_segment_versions')
    RETURNING 1
)
SELECT count(*) FROM appended
"""
CLEAR_TOMBSTONES = "DELETE FROM segment_tombstones WHERE seq <= $1"
FINISH_BUILD = "UPDATE segment_state SET through = building WHERE id = 1"

# The inner query is a plain ORDER BY distance LIMIT so the vector index serves it;
# iterative index scans (set per connection) keep a path filter from starving it.
_NEAREST = """
WITH nearest AS MATERIALIZED (
    SELECT id, embedding <=> $1 AS distance FROM chunks
    {filter}
    ORDER BY embedding <=> $1 LIMIT $2
)
"""
_NEAREST_ROWS = f"""
SELECT {_HIT_COLUMNS}, 1 - nearest.distance AS score
FROM nearest JOIN chunks c ON c.id = nearest.id JOIN documents d ON d.id = c.document_id
ORDER BY nearest.distance, c.id
"""
_NEAREST_IDS = "SELECT id, 1 - distance FROM nearest ORDER BY distance, id"
_PATH_FILTER = "WHERE starts_with(path, $3)"
SEARCH_VECTOR = _NEAREST.format(filter="") + _NEAREST_ROWS
SEARCH_VECTOR_PREFIX = _NEAREST.format(filter=_PATH_FILTER) + _NEAREST_ROWS
RANK_VECTOR = _NEAREST.format(filter="") + _NEAREST_IDS
RANK_VECTOR_PREFIX = _NEAREST.format(filter=_PATH_FILTER) + _NEAREST_IDS

DOCUMENT_OF_CHUNK = "SELECT document_id FROM chunks WHERE id = $1"
INSERT_CLICK = """
INSERT INTO click_feedback
    (query, query_key, chunk_id, document_id, position, session_id, user_id, dwell_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
"""
HAS_CLICKS = "SELECT EXISTS (SELECT 1 FROM click_feedback WHERE query_key = $1)"
DOCUMENT_CLICKS = """
SELECT c.id, c.document_id, clicked.clicks
FROM (SELECT document_id, count(*) AS clicks FROM click_feedback WHERE query_key = $1
      GROUP BY document_id) AS clicked
JOIN chunks c ON c.document_id = clicked.document_id
WHERE c.id = ANY($2::bigint[])
"""
COUNTS = """
SELECT (SELECT count(*) FROM documents), (SELECT chunk_count FROM corpus_stats WHERE id = 1),
       (SELECT count(*) FROM click_feedback)
"""
INDEX_SCANS = """
SELECT indexrelname, idx_scan FROM pg_stat_user_indexes
WHERE indexrelname IN ('chunks_embedding_hnsw', 'chunks_embedding_ivfflat', 'postings_pkey')
"""

EXPORT_DOCUMENTS = "SELECT id, path, title, source_url, content_hash FROM documents ORDER BY id"
EXPORT_CHUNKS = """
SELECT heading, anchor, text, embedding FROM chunks WHERE document_id = $1 ORDER BY ordinal
"""
EXPORT_CLICKS = """
SELECT f.id, f.query, f.query_key, d.path, c.ordinal, f.position, f.session_id, f.user_id,
       f.dwell_time, to_char(f.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
FROM click_feedback f
JOIN documents d ON d.id = f.document_id
LEFT JOIN chunks c ON c.id = f.chunk_id
ORDER BY f.id
"""
IMPORT_CLICKS = """
INSERT INTO click_feedback (id, query, query_key, chunk_id, document_id, position, session_id,
                            user_id, dwell_time, created_at)
SELECT u.id, u.query, u.query_key, c.id, d.id, u.position, u.session_id, u.user_id,
       u.dwell_time, u.created_at::timestamp AT TIME ZONE 'UTC'
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[],
            $7::text[], $8::text[], $9::float8[], $10::text[])
     AS u(id, query, query_key, path, ordinal, position, session_id, user_id, dwell_time,
          created_at)
JOIN documents d ON d.path = u.path
LEFT JOIN chunks c ON c.document_id = d.id AND c.ordinal = u.ordinal
ON CONFLICT (id) DO NOTHING
"""
# Explicit ids bypass the sequence; move it past them so new clicks do not collide.
SYNC_CLICK_SEQUENCE = """
SELECT setval('click_feedback_id_seq', greatest((SELECT max(id) FROM click_feedback), 1))
"""

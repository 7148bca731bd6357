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

import functools

INIT_LOCK = "SELECT pg_advisory_xact_lock(7240211)"
META = """
CREATE TABLE IF NOT EXISTS meta (
    key   text PRIMARY KEY,
    value text NOT NULL
)
"""
CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS vector"


# Schema 2: documents belong to collections and carry JSON metadata. Chunks repeat their
# document's collection and metadata, so a filtered vector search is one table's scan with
# the filter applied as the index walks (iterative scans), not a join per candidate.
# `embedding` has no fixed dimension: each collection has its own, and its own partial
# index over `embedding::vector(dimension)` (pgvector's way to index mixed dimensions).
_COLLECTIONS = """
CREATE TABLE IF NOT EXISTS collections (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    vectors     text NOT NULL,
    dimension   integer NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- BM25's corpus totals, per collection: one collection's writes never move another's scores.
CREATE TABLE IF NOT EXISTS collection_stats (
    collection_id bigint PRIMARY KEY REFERENCES collections(id) ON DELETE CASCADE,
    chunk_count   bigint NOT NULL DEFAULT 0,
    token_count   bigint NOT NULL DEFAULT 0,
    -- Bumped by every write to the collection: what a server checks its kept filter results
    -- against, whichever server wrote.
    version       bigint NOT NULL DEFAULT 0
);
"""

SCHEMA = (
    _COLLECTIONS
    + """
CREATE TABLE IF NOT EXISTS documents (
    id            bigserial PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path          text NOT NULL,
    title         text NOT NULL DEFAULT '',
    source_url    text NOT NULL DEFAULT '',
    content_hash  text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection_id, path)
);
CREATE TABLE IF NOT EXISTS chunks (
    id            bigserial PRIMARY KEY,
    document_id   bigint NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    collection_id bigint NOT NULL,
    path          text NOT NULL,
    ordinal       integer NOT NULL,
    heading       text NOT NULL DEFAULT '',
    anchor        text NOT NULL DEFAULT '',
    text          text NOT NULL,
    token_count   integer NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    embedding     vector NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document_id ON chunks(document_id);
CREATE INDEX IF NOT EXISTS chunks_collection_id ON chunks(collection_id);
-- Serves equality filters (containment) when a selective filter is searched exactly.
CREATE INDEX IF NOT EXISTS chunks_metadata ON chunks USING gin (metadata jsonb_path_ops);
-- Vectors stay in their row. pgvector's types store out of line past 2 kB, and 384 floats
-- and a chunk's text are past it: every exact distance and every score then fetched the
-- vector from the TOAST table (an exact scan of 20k chunks took 44 ms against 16 inline).
-- MAIN keeps it inline while the row fits a page; the row's text goes out of line first.
-- Changed only when not yet so: ALTER TABLE waits for every query on chunks and stops new
-- ones while it waits. Rows written before stay out of line until rewritten.
DO $$
BEGIN
    IF (SELECT attstorage FROM pg_attribute
        WHERE attrelid = 'chunks'::regclass AND attname = 'embedding') <> 'm' THEN
        ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;
    END IF;
    IF NOT coalesce((SELECT 'toast_tuple_target=8160' = ANY(reloptions) FROM pg_class
                     WHERE oid = 'chunks'::regclass), false) THEN
        ALTER TABLE chunks SET (toast_tuple_target = 8160);
    END IF;
END
$$;
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
-- Packed arrays do not compress, and pglz trying costs every read. Set only when not yet
-- so, as chunks' vectors are below.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = 'posting_segments'::regclass
                 AND attname IN ('chunk_ids', 'tfs', 'dls') AND attstorage <> 'e') THEN
        ALTER TABLE posting_segments
            ALTER COLUMN chunk_ids SET STORAGE EXTERNAL,
            ALTER COLUMN tfs SET STORAGE EXTERNAL,
            ALTER COLUMN dls SET STORAGE EXTERNAL;
    END IF;
END
$$;
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
-- Schema 3: clicks name the API key that sent them; API keys (their secrets' SHA-256 only).
ALTER TABLE click_feedback ADD COLUMN IF NOT EXISTS key_id text NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      text PRIMARY KEY,
    name        text NOT NULL,
    secret_hash text NOT NULL,
    scopes      text NOT NULL,
    collections text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS click_feedback_query ON click_feedback(query);
CREATE INDEX IF NOT EXISTS click_feedback_query_key ON click_feedback(query_key);
CREATE INDEX IF NOT EXISTS click_feedback_session_id ON click_feedback(session_id);
CREATE INDEX IF NOT EXISTS click_feedback_document_id ON click_feedback(document_id);
CREATE INDEX IF NOT EXISTS click_feedback_chunk_id ON click_feedback(chunk_id);
-- Schema 4: what the click model made of each click (docfoundry_grpc/feedback.py).
ALTER TABLE click_feedback ADD COLUMN IF NOT EXISTS impression text NOT NULL DEFAULT '';
ALTER TABLE click_feedback ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT '';
ALTER TABLE click_feedback ADD COLUMN IF NOT EXISTS weight double precision NOT NULL DEFAULT 0;
ALTER TABLE click_feedback ADD COLUMN IF NOT EXISTS outcome text NOT NULL
    DEFAULT 'no_impression';
CREATE INDEX IF NOT EXISTS click_feedback_counted ON click_feedback(query_key, document_id)
    WHERE outcome = 'counted';
-- Schema 4: learned rankers, every version trained, at most one live per collection.
CREATE TABLE IF NOT EXISTS ranker_models (
    collection_id bigint NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    version       integer NOT NULL,
    live          boolean NOT NULL DEFAULT false,
    model         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, version)
);
"""
)

# Schema 1 → 2. Adding a column with a constant default and dropping a dimension from a
# vector type rewrite nothing; the old vector index goes (the default collection gets its
# partial one at this start). Terms of the default collection are stored unprefixed (see
# `term_key`), so postings and packed segments, the bulk of the database, stay as they are.
UPGRADE_FROM_1 = (
    _COLLECTIONS
    + """
INSERT INTO collections (id, name, vectors, dimension)
SELECT 1, 'default', 'model', value::int FROM meta WHERE key = 'embedding_dimension';
INSERT INTO collection_stats SELECT 1, chunk_count, token_count, 0 FROM corpus_stats WHERE id = 1;
DROP TABLE corpus_stats;
ALTER TABLE documents
    ADD COLUMN collection_id bigint NOT NULL DEFAULT 1 REFERENCES collections(id) ON DELETE CASCADE,
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}',
    DROP CONSTRAINT documents_path_key,
    ADD CONSTRAINT documents_collection_id_path_key UNIQUE (collection_id, path);
ALTER TABLE documents ALTER COLUMN collection_id DROP DEFAULT;
DROP INDEX IF EXISTS chunks_embedding_hnsw;
DROP INDEX IF EXISTS chunks_embedding_ivfflat;
ALTER TABLE chunks
    ADD COLUMN collection_id bigint NOT NULL DEFAULT 1,
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}',
    ALTER COLUMN embedding TYPE vector;
ALTER TABLE chunks ALTER COLUMN collection_id DROP DEFAULT;
"""
)

# Collection ids and dimensions below are integers from our own tables, formatted into the
# text because a partial index serves only queries whose WHERE names its collection as a
# constant: with a bind parameter, a prepared statement's generic plan could not use it.


def vector_index_name(kind: str, collection_id: int) -> str:
    return f"chunks_embedding_{kind}_{int(collection_id)}"


# HNSW kinds: over the stored float32 vectors, or over their half-precision casts (half the
# pages to walk and to write; candidates are re-scored in float32, see `nearest`).
HNSW_KINDS = {"full": "hnsw", "half": "hnsw_half"}


def _vector_expression(dimension: int, *, half: bool = False) -> str:
    return f"(embedding::{'halfvec' if half else 'vector'}({int(dimension)}))"


def _drop_vector_indexes(collection_id: int, *, keep: str = "") -> str:
    kinds = ("ivfflat", *HNSW_KINDS.values())
    return "".join(
        f"DROP INDEX IF EXISTS {vector_index_name(kind, collection_id)};\n"
        for kind in kinds
        if kind != keep
    )


def hnsw_create(
    collection_id: int, dimension: int, m: int, ef_construction: int, precision: str
) -> str:
    half = precision == "half"
    operators = "halfvec_cosine_ops" if half else "vector_cosine_ops"
    return f"""
CREATE INDEX IF NOT EXISTS {vector_index_name(HNSW_KINDS[precision], collection_id)} ON chunks
    USING hnsw ({_vector_expression(dimension, half=half)} {operators})
    WITH (m = {int(m)}, ef_construction = {int(ef_construction)})
    WHERE collection_id = {int(collection_id)};
"""


def hnsw_drop(collection_id: int, precision: str) -> str:
    return f"DROP INDEX IF EXISTS {vector_index_name(HNSW_KINDS[precision], collection_id)};"


def hnsw_index(
    collection_id: int, dimension: int, m: int, ef_construction: int, *, half: bool
) -> str:
    """The HNSW index of one precision, and no other vector index, for a collection."""
    precision = "half" if half else "full"
    return _drop_vector_indexes(collection_id, keep=HNSW_KINDS[precision]) + hnsw_create(
        collection_id, dimension, m, ef_construction, precision
    )


def ivfflat_index(collection_id: int, dimension: int, lists: int) -> str:
    return _drop_vector_indexes(collection_id, keep="ivfflat") + (
        f"""
CREATE INDEX IF NOT EXISTS {vector_index_name("ivfflat", collection_id)} ON chunks
    USING ivfflat ({_vector_expression(dimension)} vector_cosine_ops) WITH (lists = {int(lists)})
    WHERE collection_id = {int(collection_id)};
"""
    )


def no_vector_index(collection_id: int) -> str:
    return _drop_vector_indexes(collection_id)


# An index built over rows already stored is many times faster than the same rows
# inserted into it one by one, provided the graph fits in this memory (pgvector warns
# and slows down when it does not). SET LOCAL: it lasts for the schema transaction only.
BUILD_MEMORY = "SELECT set_config('maintenance_work_mem', $1, true)"

# The rows a CREATE INDEX IF NOT EXISTS is about to index: none when the index exists.
ROWS_TO_INDEX = """
SELECT CASE WHEN to_regclass($1) IS NULL
            THEN (SELECT count(*) FROM chunks WHERE collection_id = $2) ELSE 0 END
"""

# The vector indexes' size against the buffer cache that should hold them (NULL: none).
VECTOR_INDEX_MEMORY = """
WITH indexes AS (
    SELECT sum(pg_relation_size(indexrelid)) AS bytes FROM pg_stat_user_indexes
    WHERE indexrelname LIKE 'chunks_embedding_%'
)
SELECT (SELECT bytes FROM indexes) AS index_bytes,
       pg_size_pretty((SELECT bytes FROM indexes)) AS index_size,
       pg_size_bytes(current_setting('shared_buffers')) AS buffer_bytes,
       current_setting('shared_buffers') AS buffer_size
"""

INDEX_BUILD_PROGRESS = """
SELECT phase,
       CASE WHEN tuples_total > 0 THEN tuples_done ELSE blocks_done END,
       CASE WHEN tuples_total > 0 THEN tuples_total ELSE blocks_total END
FROM pg_stat_progress_create_index WHERE relid = 'chunks'::regclass
"""


GET_META = "SELECT value FROM meta WHERE key = $1"
SET_META = """
INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

INSERT_DEFAULT_COLLECTION = """
INSERT INTO collections (id, name, vectors, dimension) VALUES (1, 'default', 'model', $1)
ON CONFLICT DO NOTHING
"""
INSERT_DEFAULT_STATS = "INSERT INTO collection_stats VALUES (1, 0, 0, 0) ON CONFLICT DO NOTHING"
# The default collection's explicit id bypasses the sequence; new ones must start past it.
SYNC_COLLECTION_SEQUENCE = """
SELECT setval('collections_id_seq', greatest((SELECT max(id) FROM collections), 1))
"""
ALL_COLLECTIONS = "SELECT id, name, vectors, dimension, description, created_at FROM collections"
GET_COLLECTION = f"{ALL_COLLECTIONS} WHERE name = $1"
COLLECTION_COUNTS = """
SELECT (SELECT count(*) FROM documents WHERE collection_id = $1),
       (SELECT chunk_count FROM collection_stats WHERE collection_id = $1)
"""
LIST_COLLECTIONS = """
SELECT c.id, c.name, c.vectors, c.dimension, c.description, c.created_at,
       (SELECT count(*) FROM documents d WHERE d.collection_id = c.id),
       coalesce(s.chunk_count, 0)
FROM collections c LEFT JOIN collection_stats s ON s.collection_id = c.id ORDER BY c.name
"""
INSERT_COLLECTION = """
WITH created AS (
    INSERT INTO collections (name, vectors, dimension, description) VALUES ($1, $2, $3, $4)
    ON CONFLICT (name) DO NOTHING RETURNING id, name, vectors, dimension, description, created_at
), stats AS (
    INSERT INTO collection_stats (collection_id) SELECT id FROM created
)
SELECT * FROM created
"""
DOCUMENT_IDS_OF_COLLECTION = "SELECT id FROM documents WHERE collection_id = $1"
DELETE_COLLECTION = "DELETE FROM collections WHERE id = $1"

GET_HASHES = """
SELECT path, content_hash FROM documents WHERE collection_id = $1 AND path = ANY($2::text[])
"""
GET_DOCUMENT_ID = "SELECT id FROM documents WHERE collection_id = $1 AND path = $2 FOR UPDATE"
_DOCUMENT_COLUMNS = """
    d.path, d.title, d.source_url, d.content_hash, d.metadata::text,
    (SELECT count(*) FROM chunks c WHERE c.document_id = d.id),
    to_char(d.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
"""
GET_DOCUMENT = f"""
SELECT {_DOCUMENT_COLUMNS} FROM documents d WHERE d.collection_id = $1 AND d.path = $2
"""
# {where} is a compiled filter (see filter_sql): column names and placeholders only.
LIST_DOCUMENTS = (
    f"SELECT {_DOCUMENT_COLUMNS} FROM documents d"
    + """
WHERE d.collection_id = $1 AND d.path COLLATE "C" > $2 AND {where}
ORDER BY d.path COLLATE "C" LIMIT $3
"""
)
MATCHING_DOCUMENT_IDS = """
SELECT d.id FROM documents d WHERE d.collection_id = $1 AND {where} ORDER BY d.id FOR UPDATE
"""
# A filter is evaluated once per document (its chunks share its metadata and path).
MATCHING_CHUNK_IDS = """
SELECT c.id FROM documents d JOIN chunks c ON c.document_id = d.id
WHERE d.collection_id = $1 AND {where}
"""
# xmax = 0 only on a freshly inserted row: tells a create from a replace in one statement.
# Sorted by path so concurrent batches lock document rows in one order.
UPSERT_DOCUMENTS = """
INSERT INTO documents AS d (collection_id, path, title, source_url, content_hash, metadata)
SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[]) AS u
ORDER BY 2
ON CONFLICT (collection_id, path) DO UPDATE
    SET title = excluded.title, source_url = excluded.source_url,
        content_hash = excluded.content_hash, metadata = excluded.metadata, updated_at = now()
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
    "collection_id",
    "metadata",
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
UPDATE collection_stats
SET chunk_count = chunk_count + $2, token_count = token_count + $3, version = version + 1
WHERE collection_id = $1
"""
COLLECTION_VERSION = "SELECT version, chunk_count FROM collection_stats WHERE collection_id = $1"
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
COUNT_CLICKS_OF_DOCUMENTS = """
SELECT count(*) FROM click_feedback WHERE document_id = ANY($1::bigint[])
"""
DELETE_DOCUMENTS = "DELETE FROM documents WHERE id = ANY($1::bigint[])"

_HIT_COLUMNS = """
c.id, c.document_id, c.path, d.title, d.source_url, c.heading, c.anchor, c.text, d.metadata::text
"""

# One statement, so one snapshot: per query term its df, its packed segment and its tail
# packed the same way (int8send/int4send are big-endian), with the corpus totals and the
# chunks deleted since compaction. Uncorrelated subqueries run once, not per row. $2 holds
# the segment version the caller has cached per term (0 for none); those segments come back
# as NULL, unread, with their version.
TERM_POSTINGS = """
SELECT t.term, t.df, s.version AS segment_version, sent.chunk_ids, sent.tfs, sent.dls,
       tail.chunk_ids AS tail_chunk_ids, tail.tfs AS tail_tfs, tail.dls AS tail_dls,
       (SELECT chunk_count FROM collection_stats WHERE collection_id = $3) AS chunk_count,
       (SELECT token_count FROM collection_stats WHERE collection_id = $3) AS token_count,
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
       (SELECT coalesce(sum(chunk_count), 0) FROM collection_stats)
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

# The inner query is a plain ORDER BY distance LIMIT over the collection's indexed expression,
# so its vector index serves it; iterative index scans (set per connection) keep a filter
# from starving the walk. Exact search orders by the bare column, which no index serves.
_NEAREST = """
WITH nearest AS MATERIALIZED (
    SELECT c.id, {distance} AS distance FROM chunks c
    WHERE c.collection_id = {collection} AND {where}
    ORDER BY {distance} LIMIT $2
)
"""
# Over a half-precision index: the walk finds the candidates by their halfvec distance, and
# each is scored from its stored float32 vector as the walk fetches its row (no second
# lookup), so scores and their order are those of exact search. $1 is cast to vector first,
# so that PostgreSQL types the parameter as a vector.
_NEAREST_HALF = """
WITH nearest AS MATERIALIZED (
    SELECT c.id, c.embedding <=> $1 AS distance FROM chunks c
    WHERE c.collection_id = {collection} AND {where}
    ORDER BY {walk} LIMIT $2
)
"""
_NEAREST_ROWS = f"""
SELECT {_HIT_COLUMNS}, 1 - nearest.distance AS score
FROM nearest JOIN chunks c ON c.id = nearest.id JOIN documents d ON d.id = c.document_id
ORDER BY nearest.distance, c.id
"""
_NEAREST_IDS = "SELECT id, 1 - distance FROM nearest ORDER BY distance, id"


@functools.lru_cache(maxsize=256)  # built per search: the same few texts again and again
def nearest(collection_id: int, dimension: int, where: str, *, rows: bool, half: bool) -> str:
    """The `limit` ($2) chunks nearest to $1 in a collection, as ids or as hit rows, by the
    collection's vector index (`half`: its half-precision HNSW index)."""
    d = int(dimension)
    if half:
        walk = f"c.embedding::halfvec({d}) <=> ($1::vector({d}))::halfvec({d})"
        head = _NEAREST_HALF.format(walk=walk, collection=int(collection_id), where=where)
    else:
        distance = f"c.embedding::vector({d}) <=> $1"
        head = _NEAREST.format(distance=distance, collection=int(collection_id), where=where)
    return head + (_NEAREST_ROWS if rows else _NEAREST_IDS)


# Exact search among the chunk ids a filter admits ($3): found by primary key, every
# distance computed (the bare column's order is one no index serves).
_NEAREST_AMONG = """
WITH nearest AS MATERIALIZED (
    SELECT c.id, c.embedding <=> $1 AS distance FROM chunks c WHERE c.id = ANY($3::bigint[])
    ORDER BY distance LIMIT $2
)
"""


def nearest_among(*, rows: bool) -> str:
    """The `limit` ($2) chunks nearest to $1 among the ids $3, exactly."""
    return _NEAREST_AMONG + (_NEAREST_ROWS if rows else _NEAREST_IDS)


DOCUMENT_OF_CHUNK = "SELECT document_id FROM chunks WHERE id = $1"
INSERT_CLICK = """
INSERT INTO click_feedback
    (query, query_key, chunk_id, document_id, position, session_id, user_id, dwell_time, key_id,
     impression, source, weight, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id
"""
# Clicks of one query are judged one at a time, so two cannot both slip under a cap.
LOCK_CLICK_QUERY = "SELECT pg_advisory_xact_lock(hashtext('docfoundry-click:' || $1))"
# The counted clicks a new click is judged against, in its document's collection: $1 query
# key, $2 its document, $3 session, $4 impression, $5 user, $6 API key.
COUNT_CLICKS = """
SELECT coalesce(bool_or(f.document_id = $2 AND (($3 <> '' AND session_id = $3)
                                                 OR ($4 <> '' AND impression = $4))), false),
       count(*) FILTER (WHERE $3 <> '' AND session_id = $3),
       count(*) FILTER (WHERE $5 <> '' AND user_id = $5),
       count(*) FILTER (WHERE $6 <> '' AND key_id = $6)
FROM click_feedback f JOIN documents d ON d.id = f.document_id
WHERE f.query_key = $1 AND f.outcome = 'counted'
  AND d.collection_id = (SELECT collection_id FROM documents WHERE id = $2)
"""
HAS_CLICKS = """
SELECT EXISTS (SELECT 1 FROM click_feedback WHERE query_key = $1 AND outcome = 'counted')
"""
# Per source and clicked document of the query in the collection, the summed vote; for the
# candidate chunks ($2) of those documents, with the number of sources.
CLICK_EVIDENCE = """
WITH votes AS (
    SELECT f.document_id, f.source, sum(f.weight) AS vote
    FROM click_feedback f
    JOIN documents d ON d.id = f.document_id
    JOIN collections k ON k.id = d.collection_id
    WHERE f.query_key = $1 AND f.outcome = 'counted' AND k.name = $3
    GROUP BY f.document_id, f.source
)
SELECT (SELECT count(DISTINCT source) FROM votes), c.id, c.document_id,
       (SELECT count(*) FROM click_feedback o
        WHERE o.query_key = $1 AND o.outcome = 'counted' AND o.chunk_id = c.id),
       votes.vote
FROM votes JOIN chunks c ON c.document_id = votes.document_id
WHERE c.id = ANY($2::bigint[])
"""
COUNTS = """
SELECT (SELECT count(*) FROM documents),
       (SELECT coalesce(sum(chunk_count), 0) FROM collection_stats),
       (SELECT count(*) FROM click_feedback)
"""
INDEX_SCANS = """
SELECT indexrelname, idx_scan FROM pg_stat_user_indexes
WHERE indexrelname LIKE 'chunks_embedding_%' OR indexrelname = 'postings_pkey'
"""

EXPORT_DOCUMENTS = """
SELECT d.id, c.name, d.path, d.title, d.source_url, d.content_hash, d.metadata::text
FROM documents d JOIN collections c ON c.id = d.collection_id ORDER BY d.id
"""
EXPORT_CHUNKS = """
SELECT heading, anchor, text, embedding FROM chunks WHERE document_id = $1 ORDER BY ordinal
"""
EXPORT_CLICKS = """
SELECT f.id, f.query, f.query_key, (SELECT name FROM collections WHERE id = d.collection_id),
       d.path, c.ordinal, f.position, f.session_id, f.user_id,
       f.dwell_time, to_char(f.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
       f.outcome, f.source, f.weight, f.impression, f.key_id
FROM click_feedback f
JOIN documents d ON d.id = f.document_id
LEFT JOIN chunks c ON c.id = f.chunk_id
ORDER BY f.id
"""
IMPORT_CLICKS = """
INSERT INTO click_feedback (id, query, query_key, chunk_id, document_id, position, session_id,
                            user_id, dwell_time, created_at, outcome, source, weight,
                            impression, key_id)
SELECT u.id, u.query, u.query_key, c.id, d.id, u.position, u.session_id, u.user_id,
       u.dwell_time, u.created_at::timestamp AT TIME ZONE 'UTC', u.outcome, u.source,
       u.weight, u.impression, u.key_id
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[],
            $8::text[], $9::text[], $10::float8[], $11::text[], $12::text[], $13::text[],
            $14::float8[], $15::text[], $16::text[])
     AS u(id, query, query_key, collection, path, ordinal, position, session_id, user_id,
          dwell_time, created_at, outcome, source, weight, impression, key_id)
JOIN collections k ON k.name = u.collection
JOIN documents d ON d.collection_id = k.id AND d.path = u.path
LEFT JOIN chunks c ON c.document_id = d.id AND c.ordinal = u.ordinal
ON CONFLICT (id) DO NOTHING
"""
# Explicit ids bypass the sequence; move it past them so new clicks do not collide.
SYNC_CLICK_SEQUENCE = """
SELECT setval('click_feedback_id_seq', greatest((SELECT max(id) FROM click_feedback), 1))
"""

INSERT_API_KEY = """
INSERT INTO api_keys (key_id, name, secret_hash, scopes, collections) VALUES ($1, $2, $3, $4, $5)
"""
_KEY_COLUMNS = """key_id, name, secret_hash, scopes, collections,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
       coalesce(to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '')"""
GET_API_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = $1"
LIST_API_KEYS = f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id"
REVOKE_API_KEY = """
UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id
"""

# Learned rankers ---------------------------------------------------------------------------
# Per query, source and document of a collection, the counted votes (for training).
CLICK_HISTORY = """
WITH grouped AS (
    SELECT f.query_key, min(f.id) AS first_id, f.source, f.document_id, sum(f.weight) AS vote
    FROM click_feedback f
    JOIN documents d ON d.id = f.document_id
    JOIN collections k ON k.id = d.collection_id
    WHERE f.outcome = 'counted' AND k.name = $1
    GROUP BY f.query_key, f.source, f.document_id
)
SELECT g.query_key, g.first_id, g.source, g.document_id, g.vote, c.query
FROM grouped g JOIN click_feedback c ON c.id = g.first_id
"""
# The collection's row, locked: versions of one collection are numbered one at a time.
LOCK_COLLECTION = "SELECT id FROM collections WHERE name = $1 FOR UPDATE"
RETIRE_RANKERS = "UPDATE ranker_models SET live = false WHERE collection_id = $1 AND live"
INSERT_RANKER = """
INSERT INTO ranker_models (collection_id, version, live, model)
SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM ranker_models WHERE collection_id = $1
RETURNING version
"""
LIVE_RANKERS = """
SELECT k.name, r.version FROM ranker_models r JOIN collections k ON k.id = r.collection_id
WHERE r.live
"""
RANKER_MODEL = """
SELECT r.model FROM ranker_models r JOIN collections k ON k.id = r.collection_id
WHERE k.name = $1 AND r.version = $2
"""

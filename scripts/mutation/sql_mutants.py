"""Hand-picked SQL mutants for both storage adapters, applied one at a time.

A mutation tool's string operators only garble SQL (any garbled statement fails at once),
so these are the mistakes a person makes: `<` for `<=`, `OR` for `AND`, a dropped `WHERE`
condition (kept as `(condition OR true)` so the bind parameters still line up), a prefix
match turned into a substring match, a reversed order. Each is applied to a private copy
of the tree (`--tree`, never the one others work in), the backend's tests run under
`nice -n 19` with a timeout, and the file is restored whatever happens.

    python scripts/mutation/sql_mutants.py --tree /tmp/mut-wt --out sql-before.json
    (--shard 0/2 and --shard 1/2 in two private trees halve the wall time)
    python scripts/mutation/sql_mutants.py --tree /tmp/mut-wt --out sql-after.json \
        --with tests/test_mutation_kills_sql.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SQLITE_SQL = "docfoundry_grpc/storage/sqlite/sql.py"
SQLITE_FILTER = "docfoundry_grpc/storage/sqlite/filter_sql.py"
PG_SQL = "docfoundry_grpc/storage/postgres/sql.py"
PG_FILTER = "docfoundry_grpc/storage/postgres/filter_sql.py"

SQLITE_TESTS = ["tests/test_storage.py", "tests/test_collections.py", "-k", "not postgresql"]
PG_TESTS = [
    "tests/test_storage.py",
    "tests/test_collections.py",
    "tests/test_postgres_segments.py",
    "-k",
    "not sqlite",
]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str


M = Mutant
MUTANTS = [
    # SQLite statements
    M(
        "s-hash-any-collection",
        SQLITE_SQL,
        'GET_HASH = "SELECT content_hash FROM documents WHERE collection_id = ? AND path = ?"',
        'GET_HASH = "SELECT content_hash FROM documents WHERE (collection_id = ? OR 1) AND path = ?"',  # noqa: E501
    ),
    M(
        "s-docid-any-collection",
        SQLITE_SQL,
        'GET_DOCUMENT_ID = "SELECT id FROM documents WHERE collection_id = ? AND path = ?"',
        'GET_DOCUMENT_ID = "SELECT id FROM documents WHERE (collection_id = ? OR 1) AND path = ?"',
    ),
    M(
        "s-get-document-any-collection",
        SQLITE_SQL,
        "FROM documents d WHERE d.collection_id = ? AND d.path = ?",
        "FROM documents d WHERE (d.collection_id = ? OR 1) AND d.path = ?",
    ),
    M("s-list-after-inclusive", SQLITE_SQL, "d.path > ? AND {where}", "d.path >= ? AND {where}"),
    M("s-list-desc", SQLITE_SQL, "ORDER BY d.path LIMIT ?", "ORDER BY d.path DESC LIMIT ?"),
    M(
        "s-list-filter-dropped",
        SQLITE_SQL,
        "d.path > ? AND {where}",
        "d.path > ? AND ({where} OR 1)",
    ),
    M(
        "s-list-any-collection",
        SQLITE_SQL,
        "WHERE d.collection_id = ? AND d.path > ?",
        "WHERE (d.collection_id = ? OR 1) AND d.path > ?",
    ),
    M(
        "s-matching-any-collection",
        SQLITE_SQL,
        "FROM documents d WHERE d.collection_id = ? AND {where}",
        "FROM documents d WHERE (d.collection_id = ? OR 1) AND {where}",
    ),
    M(
        "s-collection-doc-count",
        SQLITE_SQL,
        "(SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id)",
        "(SELECT COUNT(*) FROM documents d WHERE d.collection_id <= c.id)",
    ),
    M(
        "s-collection-chunk-count",
        SQLITE_SQL,
        "     WHERE d.collection_id = c.id)",
        "     WHERE d.collection_id >= c.id)",
    ),
    M(
        "s-collections-desc",
        SQLITE_SQL,
        "FROM collections c ORDER BY c.name",
        "FROM collections c ORDER BY c.name DESC",
    ),
    M(
        "s-chunks-by-ids-not-in",
        SQLITE_SQL,
        "FROM chunks c JOIN documents d ON d.id = c.document_id\nWHERE c.id IN",
        "FROM chunks c JOIN documents d ON d.id = c.document_id\nWHERE c.id NOT IN",
    ),
    M(
        "s-clicks-any-query",
        SQLITE_SQL,
        "FROM click_feedback WHERE query_key = ?\n      GROUP BY",
        "FROM click_feedback WHERE (query_key = ? OR 1)\n      GROUP BY",
    ),
    M(
        "s-clicks-counted-once",
        SQLITE_SQL,
        "COUNT(*) AS clicks",
        "COUNT(DISTINCT document_id) AS clicks",
    ),
    M(
        "s-has-clicks-negated",
        SQLITE_SQL,
        "FROM click_feedback WHERE query_key = ?)",
        "FROM click_feedback WHERE query_key <> ?)",
    ),
    M(
        "s-count-clicks-of-document",
        SQLITE_SQL,
        '"SELECT COUNT(*) FROM click_feedback WHERE document_id = ?"',
        '"SELECT COUNT(*) FROM click_feedback WHERE document_id >= ?"',
    ),
    M(
        "s-export-chunks-desc",
        SQLITE_SQL,
        "WHERE document_id = ? ORDER BY ordinal",
        "WHERE document_id = ? ORDER BY ordinal DESC",
    ),
    M(
        "s-import-click-any-collection",
        SQLITE_SQL,
        "AND k.name = :collection",
        "AND (k.name = :collection OR 1)",
    ),
    M("s-import-click-ordinal", SQLITE_SQL, "c.ordinal = :ordinal", "c.ordinal >= :ordinal"),
    M(
        "s-revoke-twice",
        SQLITE_SQL,
        "WHERE key_id = ? AND revoked_at = ''",
        "WHERE key_id = ? AND (revoked_at = '' OR 1)",
    ),
    M("s-next-chunk-id-reused", SQLITE_SQL, "'chunks'), 0) + 1", "'chunks'), 0) + 0"),
    M("s-embeddings-desc", SQLITE_SQL, "ORDER BY c.id\n", "ORDER BY c.id DESC\n"),
    M(
        "s-api-keys-order",
        SQLITE_SQL,
        "FROM api_keys ORDER BY created_at, key_id",
        "FROM api_keys ORDER BY created_at, key_id DESC",
    ),
    M(
        "s-update-swaps-title-url",
        SQLITE_SQL,
        "SET title = ?, source_url = ?",
        "SET source_url = ?, title = ?",
    ),
    M(
        "s-chunk-terms-of-document",
        SQLITE_SQL,
        "(SELECT id FROM chunks WHERE document_id = ?)\n",
        "(SELECT id FROM chunks WHERE document_id >= ?)\n",
    ),
    M(
        "s-delete-collection-range",
        SQLITE_SQL,
        '"DELETE FROM collections WHERE id = ?"',
        '"DELETE FROM collections WHERE id >= ?"',
    ),
    # SQLite filters
    M(
        "sf-prefix-as-substring",
        SQLITE_FILTER,
        'return f"(substr({path}, 1, length(?)) = ?)"',
        "return f\"({path} LIKE '%' || ? || '%' AND length(?) >= 0)\"",
    ),
    M("sf-range-or", SQLITE_FILTER, "WHERE {' AND '.join(tests)}", "WHERE {' OR '.join(tests)}"),
    M(
        "sf-number-integer-only",
        SQLITE_FILTER,
        "\"j.type IN ('integer', 'real')\"",
        "\"j.type IN ('integer')\"",
    ),
    M("sf-exists-negated", SQLITE_FILTER, "?) IS NOT NULL)", "?) IS NULL)"),
    M(
        "sf-empty-all-false",
        SQLITE_FILTER,
        '.join(parts) + ")" if parts else "1"',
        '.join(parts) + ")" if parts else "0"',
    ),
    M(
        "sf-bool-swapped",
        SQLITE_FILTER,
        '"true" if value else "false"',
        '"false" if value else "true"',
    ),
    M(
        "sf-string-any-type",
        SQLITE_FILTER,
        "\"(j.type = 'text' AND j.value = ?)\"",
        '"(j.value = ?)"',
    ),
    M("sf-number-any-type", SQLITE_FILTER, 'f"({_NUMBER} AND j.value = ?)"', '"(j.value = ?)"'),
    M(
        "sf-not-dropped",
        SQLITE_FILTER,
        'return f"(NOT {_compile(node.filter, metadata, path, params)})"',
        'return f"({_compile(node.filter, metadata, path, params)})"',
    ),
    M("sf-any-of-and", SQLITE_FILTER, '" OR ".join(parts)', '" AND ".join(parts)'),
    M("sf-all-or", SQLITE_FILTER, '" AND ".join(parts)', '" OR ".join(parts)'),
    M(
        "sf-one-of-and",
        SQLITE_FILTER,
        'condition = " OR ".join(tests)',
        'condition = " AND ".join(tests)',
    ),
    # PostgreSQL statements
    M(
        "p-hash-any-collection",
        PG_SQL,
        '"SELECT content_hash FROM documents WHERE collection_id = $1 AND path = $2"',
        '"SELECT content_hash FROM documents WHERE (collection_id = $1 OR true) AND path = $2"',
    ),
    M(
        "p-get-document-any-collection",
        PG_SQL,
        "FROM documents d WHERE d.collection_id = $1 AND d.path = $2",
        "FROM documents d WHERE (d.collection_id = $1 OR true) AND d.path = $2",
    ),
    M("p-list-after-inclusive", PG_SQL, 'd.path COLLATE "C" > $2', 'd.path COLLATE "C" >= $2'),
    M(
        "p-list-desc",
        PG_SQL,
        'ORDER BY d.path COLLATE "C" LIMIT $3',
        'ORDER BY d.path COLLATE "C" DESC LIMIT $3',
    ),
    M("p-list-filter-dropped", PG_SQL, "> $2 AND {where}", "> $2 AND ({where} OR true)"),
    M(
        "p-matching-docs-any-collection",
        PG_SQL,
        "FROM documents d WHERE d.collection_id = $1 AND {where} ORDER BY",
        "FROM documents d WHERE (d.collection_id = $1 OR true) AND {where} ORDER BY",
    ),
    M(
        "p-matching-chunks-any-collection",
        PG_SQL,
        'WHERE d.collection_id = $1 AND {where}\n"""\n# xmax',
        'WHERE (d.collection_id = $1 OR true) AND {where}\n"""\n# xmax',
    ),
    M("p-df-not-accumulated", PG_SQL, "SET df = t.df + excluded.df", "SET df = excluded.df"),
    M("p-empty-terms-kept", PG_SQL, "AND df <= 0", "AND df < 0"),
    M(
        "p-token-count-subtracted",
        PG_SQL,
        "token_count = token_count + $3",
        "token_count = token_count - $3",
    ),
    M(
        "p-tombstone-strict",
        PG_SQL,
        "p.chunk_id <= greatest(s.through, s.building)",
        "p.chunk_id < greatest(s.through, s.building)",
    ),
    M(
        "p-tail-inclusive",
        PG_SQL,
        "p.term = t.term AND p.chunk_id > state.through",
        "p.term = t.term AND p.chunk_id >= state.through",
    ),
    M(
        "p-cached-segment-inverted",
        PG_SQL,
        "s.version IS DISTINCT FROM q.cached_version",
        "s.version IS NOT DISTINCT FROM q.cached_version",
    ),
    M(
        "p-chunk-count-off-by-one",
        PG_SQL,
        "(SELECT chunk_count FROM collection_stats WHERE collection_id = $3) AS chunk_count",
        "(SELECT chunk_count + 1 FROM collection_stats WHERE collection_id = $3) AS chunk_count",
    ),
    M(
        "p-build-strict",
        PG_SQL,
        "WHERE p.chunk_id <= $2\nGROUP BY",
        "WHERE p.chunk_id < $2\nGROUP BY",
    ),
    M(
        "p-append-inclusive",
        PG_SQL,
        "WHERE p.chunk_id > $1 AND p.chunk_id <= $2",
        "WHERE p.chunk_id >= $1 AND p.chunk_id <= $2",
    ),
    M(
        "p-append-ignores-tombstones",
        PG_SQL,
        "AND NOT EXISTS (SELECT 1 FROM segment_tombstones t WHERE t.term = p.term)",
        "AND (NOT EXISTS (SELECT 1 FROM segment_tombstones t WHERE t.term = p.term) OR true)",
    ),
    M("p-clear-tombstones-strict", PG_SQL, "WHERE seq <= $1", "WHERE seq < $1"),
    M(
        "p-build-misses-newest",
        PG_SQL,
        "coalesce(max(id), 0) FROM chunks)",
        "coalesce(max(id) - 1, 0) FROM chunks)",
    ),
    M("p-backlog-inclusive", PG_SQL, "WHERE c.id > s.through", "WHERE c.id >= s.through"),
    M(
        "p-clicks-any-query",
        PG_SQL,
        "FROM click_feedback WHERE query_key = $1\n      GROUP BY",
        "FROM click_feedback WHERE (query_key = $1 OR true)\n      GROUP BY",
    ),
    M(
        "p-clicks-counted-once",
        PG_SQL,
        "count(*) AS clicks",
        "count(DISTINCT document_id) AS clicks",
    ),
    M(
        "p-has-clicks-negated",
        PG_SQL,
        "FROM click_feedback WHERE query_key = $1)",
        "FROM click_feedback WHERE query_key <> $1)",
    ),
    M(
        "p-nearest-farthest",
        PG_SQL,
        "ORDER BY {distance} LIMIT $2",
        "ORDER BY {distance} DESC LIMIT $2",
    ),
    M("p-score-is-distance", PG_SQL, "1 - nearest.distance AS score", "nearest.distance AS score"),
    M(
        "p-nearest-ties-desc",
        PG_SQL,
        'FROM nearest ORDER BY distance, id"',
        'FROM nearest ORDER BY distance, id DESC"',
    ),
    M(
        "p-among-ignores-ids",
        PG_SQL,
        "WHERE c.id = ANY($3::bigint[])",
        "WHERE (c.id = ANY($3::bigint[]) OR true)",
    ),
    M(
        "p-nearest-filter-dropped",
        PG_SQL,
        "c.collection_id = {collection} AND {where}",
        "c.collection_id = {collection} AND ({where} OR true)",
    ),
    M(
        "p-collection-doc-count",
        PG_SQL,
        "SELECT (SELECT count(*) FROM documents WHERE collection_id = $1)",
        "SELECT (SELECT count(*) FROM documents WHERE (collection_id = $1 OR true))",
    ),
    M(
        "p-collections-desc",
        PG_SQL,
        "ON s.collection_id = c.id ORDER BY c.name",
        "ON s.collection_id = c.id ORDER BY c.name DESC",
    ),
    M(
        "p-old-tokens-max",
        PG_SQL,
        "SELECT count(*), coalesce(sum(token_count), 0) FROM chunks",
        "SELECT count(*), coalesce(max(token_count), 0) FROM chunks",
    ),
    M(
        "p-old-df-off-by-one",
        PG_SQL,
        "SELECT p.term, count(*)::int",
        "SELECT p.term, (count(*) - 1)::int",
    ),
    M(
        "p-export-chunks-desc",
        PG_SQL,
        "WHERE document_id = $1 ORDER BY ordinal",
        "WHERE document_id = $1 ORDER BY ordinal DESC",
    ),
    M(
        "p-revoke-twice",
        PG_SQL,
        "AND revoked_at IS NULL RETURNING",
        "AND (revoked_at IS NULL OR true) RETURNING",
    ),
    M("p-created-inverted", PG_SQL, "(d.xmax = 0) AS created", "(d.xmax <> 0) AS created"),
    M(
        "p-index-memory-substring",
        PG_SQL,
        "WHERE indexrelname LIKE 'chunks_embedding_%'\n)",
        "WHERE indexrelname LIKE '%chunks_embedding_%'\n)",
    ),
    # PostgreSQL filters
    M(
        "pf-prefix-as-substring",
        PG_FILTER,
        'f"starts_with({alias}.path, {params.add(node.prefix)})"',
        'f"(strpos({alias}.path, {params.add(node.prefix)}) > 0)"',
    ),
    M(
        "pf-range-or",
        PG_FILTER,
        "coalesce({' AND '.join(tests)}, false)",
        "coalesce({' OR '.join(tests)}, false)",
    ),
    M(
        "pf-range-missing-matches",
        PG_FILTER,
        "coalesce({' AND '.join(tests)}, false)",
        "coalesce({' AND '.join(tests)}, true)",
    ),
    M("pf-list-element-dropped", PG_FILTER, "if isinstance(value, str):", "if False:"),
    M(
        "pf-not-dropped",
        PG_FILTER,
        'return f"(NOT {_compile(node.filter, alias, params)})"',
        'return f"({_compile(node.filter, alias, params)})"',
    ),
    M("pf-any-of-and", PG_FILTER, '"(" + " OR ".join(parts)', '"(" + " AND ".join(parts)'),
    M("pf-all-or", PG_FILTER, '"(" + " AND ".join(parts)', '"(" + " OR ".join(parts)'),
    M(
        "pf-empty-all-false",
        PG_FILTER,
        '.join(parts) + ")" if parts else "true"',
        '.join(parts) + ")" if parts else "false"',
    ),
    M(
        "pf-one-of-and",
        PG_FILTER,
        'return "(" + " OR ".join(tests)',
        'return "(" + " AND ".join(tests)',
    ),
]


@dataclass(frozen=True)
class Outcome:
    name: str
    path: str
    killed: bool
    seconds: float
    detail: str


def run(mutant: Mutant, tree: Path, extra: list[str], timeout: float) -> Outcome:
    target = tree / mutant.path
    original = target.read_text()
    if original.count(mutant.old) != 1:
        raise SystemExit(f"{mutant.name}: the text to replace occurs {original.count(mutant.old)}×")
    tests = SQLITE_TESTS if "/sqlite/" in mutant.path else PG_TESTS
    # The added tests go first: with -x, a mutant they kill stops the run early.
    files = extra + [t for t in tests if t.startswith("tests/")]
    selection = [t for t in tests if not t.startswith("tests/")]
    command = ["nice", "-n", "19", sys.executable, "-m", "pytest", "-x", "-q"]
    command += ["-p", "no:cacheprovider", *files, *selection]
    started = time.monotonic()
    target.write_text(original.replace(mutant.old, mutant.new))
    try:
        done = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=timeout)
        killed, detail = done.returncode != 0, (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode not in (0, 1):
            detail = f"exit {done.returncode}: {detail}"
    except subprocess.TimeoutExpired:
        killed, detail = True, f"timeout after {timeout:.0f} s"
    finally:
        target.write_text(original)
    return Outcome(mutant.name, mutant.path, killed, time.monotonic() - started, detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, required=True, help="a private copy of the repo")
    parser.add_argument("--out", type=Path, required=True, help="JSON results")
    parser.add_argument("--with", dest="extra", action="append", default=[], help="more tests")
    parser.add_argument("--only", action="append", default=[], help="mutant names")
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--shard", default="0/1", help="K/N: every Nth mutant from the Kth")
    parser.add_argument("--resume", action="store_true", help="keep --out's results, run the rest")
    args = parser.parse_args()
    k, n = map(int, args.shard.split("/"))
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only][k::n]
    outcomes = []
    if args.resume and args.out.exists():
        outcomes = [Outcome(**o) for o in json.loads(args.out.read_text())]
        done = {o.name for o in outcomes}
        chosen = [m for m in chosen if m.name not in done]
    for mutant in chosen:
        outcome = run(mutant, args.tree, args.extra, args.timeout)
        outcomes.append(outcome)
        verdict = "killed  " if outcome.killed else "SURVIVED"
        print(f"{verdict} {outcome.name:36} {outcome.seconds:5.1f} s  {outcome.detail}", flush=True)
        args.out.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    for path in sorted({o.path for o in outcomes}):
        mine = [o for o in outcomes if o.path == path]
        survived = sum(not o.killed for o in mine)
        print(f"{path}: {survived}/{len(mine)} survived")


if __name__ == "__main__":
    main()

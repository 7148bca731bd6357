"""A small documentation set used by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

from docfoundry.v1 import search_pb2 as pb

MARKDOWN = {
    "guides/install.md": """# Installing DocFoundry

Install the package with pip, then run the server.

## Configuration

Set `GRPC_PORT` to change the port. The default port is 50051.

## Troubleshooting

If the server does not start, check the log level and the database path.
""",
    "guides/search.md": """# Search modes

## Full-text search

BM25 ranks chunks by term frequency and inverse document frequency.

## Semantic search

Embeddings from a sentence transformer find passages with similar meaning.

## Hybrid search

Reciprocal rank fusion combines the full-text and semantic rankings.
""",
    "api/errors.md": """# Errors

Invalid arguments return INVALID_ARGUMENT. Unknown chunks return NOT_FOUND.
A database outage returns UNAVAILABLE.
""",
}
HTML = {
    "blog/pets.html": """<html><head><title>Pets</title></head><body>
<h1 id="cats">Cats</h1><p>Cats sleep most of the day and purr when they are content.</p>
<h2>Dogs</h2><p>Dogs love long walks in the park and playing fetch.</p>
</body></html>""",
}
TEXT = {
    "notes/cooking.txt": "Bake the bread at 220 degrees for thirty minutes.\n\n"
    "Let the dough rise overnight in a cool kitchen.",
}


def documents() -> list[pb.Document]:
    docs = [
        pb.Document(
            path=p,
            title=c.splitlines()[0].lstrip("# "),
            content=c,
            source_url=f"https://docs.example/{p}",
        )
        for p, c in MARKDOWN.items()
    ]
    docs += [pb.Document(path=p, title="Pets", content=c) for p, c in HTML.items()]
    docs += [pb.Document(path=p, title="Cooking notes", content=c) for p, c in TEXT.items()]
    return docs


def requests(docs: list[pb.Document]) -> Iterator[pb.IndexDocumentsRequest]:
    return iter([pb.IndexDocumentsRequest(document=d) for d in docs])

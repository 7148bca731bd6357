"""What each RPC needs: the access an API key must grant, the kind of work admission
control counts it as, and the collection it touches. One table, read by the interceptor;
a method missing from it needs an `admin` key (closed by default)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..models import DEFAULT_COLLECTION, Scope


class Access(enum.Enum):
    PUBLIC = "public"  # no key needed
    ANY_KEY = "any key"  # any valid key, whatever its scopes
    SEARCH = "search"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def scope(self) -> Scope | None:
        return {
            Access.SEARCH: Scope.SEARCH,
            Access.WRITE: Scope.WRITE,
            Access.ADMIN: Scope.ADMIN,
        }.get(self)


class Kind(enum.Enum):
    """Admission kinds at the RPC level; query embeddings are a third, inside searches."""

    SEARCH = "search"
    INGEST = "ingest"


CollectionOf = Callable[[Any], str]


def _collection(request: Any) -> str:
    return str(request.collection) or DEFAULT_COLLECTION


def _name(request: Any) -> str:
    return str(request.name) or DEFAULT_COLLECTION


@dataclass(frozen=True)
class MethodPolicy:
    access: Access
    kind: Kind | None = None
    # The collection a request names, for keys limited to some; None: the method names
    # none (a limited key may still call it when `access` allows: Health, for one).
    collection: CollectionOf | None = None
    # Refused to keys limited to some collections (it spans all of them).
    all_collections: bool = False


_SEARCH = "/docfoundry.v1.SearchService/"
_INDEX = "/docfoundry.v1.IndexService/"
_COLLECTIONS = "/docfoundry.v1.CollectionService/"
_HEALTH = "/grpc.health.v1.Health/"

POLICIES: dict[str, MethodPolicy] = {
    _SEARCH + "Fulltext": MethodPolicy(Access.SEARCH, Kind.SEARCH, _collection),
    _SEARCH + "Semantic": MethodPolicy(Access.SEARCH, Kind.SEARCH, _collection),
    _SEARCH + "Hybrid": MethodPolicy(Access.SEARCH, Kind.SEARCH, _collection),
    _SEARCH + "RecordClick": MethodPolicy(Access.SEARCH, Kind.SEARCH),
    _SEARCH + "Health": MethodPolicy(Access.SEARCH),
    _INDEX + "IndexDocuments": MethodPolicy(Access.WRITE, Kind.INGEST, _collection),
    _INDEX + "DeleteDocument": MethodPolicy(Access.WRITE, Kind.INGEST, _collection),
    _INDEX + "DeleteDocuments": MethodPolicy(Access.WRITE, Kind.INGEST, _collection),
    _INDEX + "GetDocument": MethodPolicy(Access.SEARCH, Kind.SEARCH, _collection),
    _INDEX + "ListDocuments": MethodPolicy(Access.SEARCH, Kind.SEARCH, _collection),
    _COLLECTIONS + "CreateCollection": MethodPolicy(Access.ADMIN, Kind.INGEST, _name),
    _COLLECTIONS + "GetCollection": MethodPolicy(Access.SEARCH, None, _name),
    _COLLECTIONS + "ListCollections": MethodPolicy(Access.SEARCH, all_collections=True),
    _COLLECTIONS + "DeleteCollection": MethodPolicy(Access.ADMIN, Kind.INGEST, _name),
    # Not admitted as one unit (it would hold a slot for minutes): it embeds on the ingest
    # thread and scores at most training.CONCURRENCY queries at a time.
    _COLLECTIONS + "TrainRanker": MethodPolicy(Access.ADMIN, None, _collection),
    _HEALTH + "Check": MethodPolicy(Access.PUBLIC),
    _HEALTH + "Watch": MethodPolicy(Access.PUBLIC),
    _HEALTH + "List": MethodPolicy(Access.ANY_KEY),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": MethodPolicy(Access.ANY_KEY),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": MethodPolicy(Access.ANY_KEY),
}
CLOSED = MethodPolicy(Access.ADMIN, all_collections=True)


def policy_for(method: str) -> MethodPolicy:
    return POLICIES.get(method, CLOSED)

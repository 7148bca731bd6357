"""API-key authentication and authorisation for the interceptor.

A call sends `authorization: Bearer dfk_<id>_<secret>`. Keys are read from the store and
kept for `cache_seconds`, so a revoked key stops working within that bound on every server
sharing the database, without a database round trip per call. Unknown key ids are cached
too, so a flood of made-up keys costs the database one lookup each per period at most.
Messages name the key id at most, never the secret."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from cachetools import TTLCache

from ..errors import PermissionDeniedError, UnauthenticatedError
from ..keys import parse_token, verify
from ..models import ApiKey
from ..storage.base import StorageAdapter
from .policy import Access, MethodPolicy

KEY_CACHE_SECONDS = 5.0
KEY_CACHE_SIZE = 10_000

# The key of the call being served (None when keys are off or the method is public), for
# what records who did something: clicks.
CALLER_KEY: ContextVar[ApiKey | None] = ContextVar("caller_key", default=None)


def caller_key_id() -> str:
    key = CALLER_KEY.get()
    return key.key_id if key is not None else ""


class Authenticator:
    def __init__(self, store: StorageAdapter, *, cache_seconds: float = KEY_CACHE_SECONDS):
        self.store = store
        self._keys: TTLCache[str, ApiKey | None] = TTLCache(KEY_CACHE_SIZE, cache_seconds)

    async def authenticate(self, policy: MethodPolicy, metadata: Any) -> ApiKey | None:
        """The call's key, checked for the method's access (None for public methods)."""
        if policy.access is Access.PUBLIC:
            return None
        key = await self._key(_bearer(metadata))
        scope = policy.access.scope
        if scope is not None and not key.allows(scope):
            held = ", ".join(sorted(s.value for s in key.scopes))
            raise PermissionDeniedError(
                f"API key {key.key_id} has scopes [{held}]; this method needs {scope.value!r}"
            )
        if policy.all_collections and key.collections:
            raise PermissionDeniedError(
                f"API key {key.key_id} is limited to some collections; this method spans all"
            )
        return key

    @staticmethod
    def check_collection(key: ApiKey | None, policy: MethodPolicy, request: Any) -> None:
        if key is None or policy.collection is None:
            return
        name = policy.collection(request)
        if not key.allows_collection(name):
            raise PermissionDeniedError(f"API key {key.key_id} is not allowed collection {name!r}")

    async def _key(self, token: str) -> ApiKey:
        key_id, secret = parse_token(token)
        if key_id in self._keys:
            key = self._keys[key_id]
        else:
            key = await self.store.get_api_key(key_id)
            self._keys[key_id] = key
        return verify(key, secret)


def _bearer(metadata: Any) -> str:
    """The bearer token of `metadata` (gRPC metadata: key, value pairs)."""
    values = [str(v) for k, v in metadata or () if k == "authorization"]
    if not values:
        raise UnauthenticatedError(
            "this server needs an API key: send the metadata 'authorization: Bearer <key>'"
        )
    scheme, _, token = values[0].partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("the authorization metadata must be 'Bearer <key>'")
    return token.strip()

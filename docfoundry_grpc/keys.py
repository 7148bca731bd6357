"""API keys: `dfk_<key id>_<secret>`. The id finds the stored key; the secret is checked
against its SHA-256. A plain hash, not a password hash (bcrypt, argon2), because the secret
is 256 random bits, not something a person chose: nothing can be guessed by brute force, and
a check costs microseconds instead of the tens of milliseconds a slow hash would add to
every call. GitHub and Stripe tokens are stored the same way."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from .errors import InvalidArgumentError, UnauthenticatedError
from .models import ApiKey, Scope
from .validation import check_collection_name, check_text

PREFIX = "dfk"
TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")
MAX_KEY_NAME_CHARS = 200


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(
    name: str, scopes: Iterable[Scope], collections: Iterable[str] = ()
) -> tuple[str, ApiKey]:
    """A new key: the token to hand to its user once, and what to store."""
    check_text(name, "name", max_chars=MAX_KEY_NAME_CHARS)
    if not name.strip():
        raise InvalidArgumentError("a key needs a name that says who or what uses it")
    scopes = frozenset(scopes)
    if not scopes:
        raise InvalidArgumentError("a key needs at least one scope: search, write or admin")
    limited = tuple(sorted({check_collection_name(c) for c in collections}))
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(key_id, name, secret_hash(secret), scopes, limited)
    return f"{PREFIX}_{key_id}_{secret}", key


def parse_token(token: str) -> tuple[str, str]:
    """(key id, secret) of a well-formed token; UnauthenticatedError otherwise. The error
    never repeats the token."""
    match = TOKEN.fullmatch(token)
    if match is None:
        raise UnauthenticatedError("the API key is malformed (expected dfk_<id>_<secret>)")
    return match.group(1), match.group(2)


def verify(key: ApiKey | None, secret: str) -> ApiKey:
    """The key, if it exists, is not revoked and `secret` is its secret."""
    if key is None or not hmac.compare_digest(key.secret_hash, secret_hash(secret)):
        raise UnauthenticatedError("the API key is not valid")
    if key.revoked_at:
        raise UnauthenticatedError(f"the API key {key.key_id} was revoked")
    return key

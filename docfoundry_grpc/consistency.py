"""Read-your-writes across servers and replicas: the consistency token a write returns, and
the one a read brings.

A token is opaque to callers. On PostgreSQL it is the primary's WAL position once the write
has committed (`pg:16/B374D848`, see `storage/postgres/replicas.py`); SQLite is one process
on one file, where every read already sees every acknowledged write, so it returns none and
needs none. Tokens are checked the same way on both, by `check_consistency_token`; the
service sets READ_AFTER for the call it serves, and the storage layer reads it.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

from .errors import InvalidArgumentError

# The consistency token of the call being served (None: no requirement).
READ_AFTER: ContextVar[str | None] = ContextVar("read_after", default=None)
_TOKEN = re.compile(r"pg:([0-9A-F]{1,8})/([0-9A-F]{1,8})")


def token_for(position: int) -> str:
    """A WAL position, written as PostgreSQL writes it."""
    return f"pg:{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def position_of(token: str) -> int:
    """The WAL position of a token `check_consistency_token` accepted."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise InvalidArgumentError(
            "consistency_token is not one this service returned", field="consistency_token"
        )
    return int(match.group(1), 16) << 32 | int(match.group(2), 16)


def check_consistency_token(token: str) -> str | None:
    """The token of a read request, checked (None when empty)."""
    if not token:
        return None
    position_of(token)
    return token

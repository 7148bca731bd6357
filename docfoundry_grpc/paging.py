"""Opaque page tokens: where the next page starts, bound to the request that made it.

A token carries a position (an offset into a ranking, or the last path of a listing) and an
HMAC over that position and the request's fingerprint (everything that decides the result
order except the page size). A token is therefore refused if it comes from another query,
mode, filter or collection, or was altered. The key is `PAGE_TOKEN_SECRET`; servers that
share a database should share it too, so a token from one is good on another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from .errors import InvalidArgumentError

_VERSION = 1


class PageTokens:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"docfoundry-page-token\x00" + secret.encode()).digest()

    def encode(self, fingerprint: str, position: int | str) -> str:
        body = json.dumps([_VERSION, position], separators=(",", ":"))
        signature = self._sign(fingerprint, body)
        return base64.urlsafe_b64encode(f"{body}|{signature}".encode()).decode().rstrip("=")

    def decode(self, token: str, fingerprint: str) -> int | str:
        """The position a token carries; INVALID_ARGUMENT unless this request made it."""
        invalid = InvalidArgumentError(
            "page_token is not valid for this request (it comes from another query, "
            "collection or filter, or was altered)",
            field="page_token",
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            body, signature = raw.rsplit("|", 1)
            version, position = json.loads(body)
        except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
            raise invalid from None
        if version != _VERSION or not hmac.compare_digest(signature, self._sign(fingerprint, body)):
            raise invalid
        if not isinstance(position, int | str) or isinstance(position, bool):
            raise invalid
        return position

    def _sign(self, fingerprint: str, body: str) -> str:
        message = f"{fingerprint}\x00{body}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

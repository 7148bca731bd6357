"""Click feedback: impressions, the position-debiased click model, and the abuse caps.

Pure functions and a token codec, shared by both backends; the design and its references
are in docs/clicks.md. In short:

- **Impressions.** Every search response carries an `impression_id`: a signed token naming
  the query, the collection and the chunks shown, in order. A click sends it back, so the
  server knows what it showed and where, whatever the caller claims. A click without one,
  or on a chunk it does not name, is stored but weighs nothing.
- **Position bias (a position-based model, with inverse propensity weights).** A user
  examines rank r with probability θ(r) = (1/r)^η, and clicks what they examine when it
  looks relevant. A click at rank r therefore votes 1/θ(r) (θ never below a floor, which
  bounds the variance), so a result clicked at rank 8 is not outvoted by one that was
  clicked at rank 1 only because it was on top.
- **Dwell.** A click followed by a short dwell is a bounce: it votes against the result.
- **Sources.** Votes are summed per source (the user, else the session, else the API key,
  else the impression), and a query's estimate for a result is the sum over sources divided
  by the number of sources plus a prior, so a few clicks move little. One source adds at
  most `source_bound` of the top score to any result, however many clicks it sends.
- **Caps.** A session counts one click per result and query, and at most `session_cap`
  clicks per query; a user `user_cap`; an API key `key_cap`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import ClickConfig
from .errors import InvalidArgumentError
from .models import ClickCounts, ClickEvent, ClickEvidence, ClickOutcome
from .text import query_key, query_terms

_VERSION = 1
MAX_SHOWN = 100_000  # no response shows more hits, or ranks deeper, than this


@dataclass(frozen=True)
class Impression:
    """What a search response showed: its query (as the user typed it, spaces folded),
    collection and chunk ids in order, the rank of the first (pages after the first start
    past 1), and when."""

    query: str
    collection: str
    chunk_ids: tuple[int, ...]
    first_rank: int
    nonce: str
    issued_at: float

    @property
    def query_key(self) -> str:
        return query_key(query_terms(self.query))

    def position_of(self, chunk_id: int) -> int | None:
        """The 1-based rank the chunk was shown at, or None if it was not shown."""
        try:
            return self.first_rank + self.chunk_ids.index(chunk_id)
        except ValueError:
            return None


class ImpressionTokens:
    """Signs impressions into opaque tokens and reads them back. The key derives from
    PAGE_TOKEN_SECRET: servers sharing a database should share it, and a server without one
    gives tokens anyone could forge (the caps still hold, the positions do not)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"docfoundry-impression\x00" + secret.encode()).digest()

    def issue(
        self, query: str, collection: str, chunk_ids: Sequence[int], *, first_rank: int = 1
    ) -> str:
        body = json.dumps(
            [
                _VERSION,
                " ".join(query.split()),
                collection,
                list(chunk_ids),
                first_rank,
                secrets.token_hex(8),
                int(time.time()),
            ],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        signature = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]
        return base64.urlsafe_b64encode(f"{body}|{signature}".encode()).decode().rstrip("=")

    def read(self, token: str) -> Impression:
        """The impression a token names; INVALID_ARGUMENT if it is not one of ours."""
        invalid = InvalidArgumentError(
            "impression_id is not one this service issued (or was altered)",
            field="impression_id",
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            body, signature = raw.rsplit("|", 1)
            expected = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]
            if not hmac.compare_digest(signature, expected):
                raise invalid
            version, query, collection, ids, first, nonce, issued = json.loads(body)
        except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
            raise invalid from None
        # Signed is not enough: without PAGE_TOKEN_SECRET anyone can sign, so every field
        # is checked as if it came from the caller.
        well_formed = (
            version == _VERSION
            and isinstance(query, str)
            and isinstance(collection, str)
            and isinstance(nonce, str)
            and isinstance(ids, list)
            and len(ids) <= MAX_SHOWN
            and all(_is_int(i) and 0 < i < 2**63 for i in ids)
            and _is_int(first)
            and 1 <= first <= MAX_SHOWN
            and isinstance(issued, int | float)
            and not isinstance(issued, bool)
            and math.isfinite(issued)
        )
        if not well_formed:
            raise invalid
        return Impression(query, collection, tuple(ids), first, nonce, float(issued))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def propensity(rank: int, config: ClickConfig) -> float:
    """The probability that a user examines rank `rank`: (1/rank)^eta, floored."""
    return max(config.min_propensity, math.pow(rank, -config.eta))


def dwell_weight(dwell_seconds: float, config: ClickConfig) -> float:
    """1 for a click users stayed with (or whose dwell is unknown, 0); a bounce, a dwell
    shorter than `short_dwell_seconds`, votes `short_dwell_weight` (negative by default)."""
    if 0 < dwell_seconds < config.short_dwell_seconds:
        return config.short_dwell_weight
    return 1.0


def click_vote(position: int, dwell_seconds: float, config: ClickConfig) -> float:
    """One click's vote: its dwell weight over the propensity of where it was shown."""
    return dwell_weight(dwell_seconds, config) / propensity(position, config)


def click_source(click: ClickEvent, impression_nonce: str) -> str:
    """Who a click speaks for: the most specific identity it carries."""
    if click.user_id:
        return f"user:{click.user_id}"
    if click.session_id:
        return f"session:{click.session_id}"
    if click.key_id:
        return f"key:{click.key_id}"
    return f"impression:{impression_nonce}"


def judge_caps(click: ClickEvent, counts: ClickCounts, config: ClickConfig) -> ClickOutcome:
    """Whether a click that was shown counts, given the counted clicks already stored for
    its query. Empty identities are not capped (they are not one session, user or key)."""
    if counts.duplicate:
        return ClickOutcome.DUPLICATE
    if click.session_id and counts.session >= config.session_cap:
        return ClickOutcome.SESSION_CAP
    if click.user_id and counts.user >= config.user_cap:
        return ClickOutcome.USER_CAP
    if click.key_id and counts.key >= config.key_cap:
        return ClickOutcome.KEY_CAP
    return ClickOutcome.COUNTED


def click_estimate(votes: Sequence[float], sources: int, config: ClickConfig) -> float:
    """A query's debiased estimate for one result, from the votes of the sources that
    clicked it (of `sources` in all): shrunk toward 0, each source's share at most
    `source_bound`, the whole within ±`weight`."""
    denominator = sources + config.prior_sources
    bound = config.source_bound
    shares = (min(bound, max(-bound, config.weight * v / denominator)) for v in votes)
    return min(config.weight, max(-config.weight, sum(shares)))


def click_boosts(
    evidence: ClickEvidence, top_score: float, config: ClickConfig
) -> dict[int, float]:
    """Per candidate chunk, what its query's clicks add to its fused score: the estimate in
    units of the top fused score (so either fusion method's scale works)."""
    if not evidence.votes or top_score <= 0:
        return {}
    return {
        chunk_id: click_estimate(votes, evidence.sources, config) * top_score
        for chunk_id, votes in evidence.votes.items()
    }


def one_chunk_per_document(
    boosts: Mapping[int, float],
    order: Sequence[int],
    documents: Mapping[int, int],
    own_clicks: Mapping[int, int],
) -> dict[int, float]:
    """The boosts of one chunk per document: the one clicked most itself, else the one
    placed best in `order`. Clicks lift the section users chose, once, instead of filling
    the top with a document's every chunk and pushing other documents out of sight."""
    chosen: dict[int, tuple[tuple[int, int], int]] = {}  # document -> (sort key, chunk id)
    for place, chunk_id in enumerate(order):
        if chunk_id not in boosts:
            continue
        document = documents.get(chunk_id, -chunk_id)
        key = (-own_clicks.get(chunk_id, 0), place)
        if document not in chosen or key < chosen[document][0]:
            chosen[document] = (key, chunk_id)
    return {chunk_id: boosts[chunk_id] for _, chunk_id in chosen.values()}


def apply_boosts(
    scored: Sequence[tuple[int, float]], boosts: Mapping[int, float]
) -> list[tuple[int, float]]:
    """`scored` (best first) with the boosts added and re-ranked; ties keep the old order."""
    boosted = [(chunk_id, score + boosts.get(chunk_id, 0.0)) for chunk_id, score in scored]
    order = sorted(range(len(boosted)), key=lambda i: (-boosted[i][1], i))
    return [boosted[i] for i in order]

"""The click model's pure parts: propensities, dwell, votes, sources, caps, the bound on one
source, re-ranking, and impression tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from docfoundry_grpc.config import ClickConfig, Settings
from docfoundry_grpc.errors import InvalidArgumentError
from docfoundry_grpc.feedback import (
    ImpressionTokens,
    apply_boosts,
    click_boosts,
    click_source,
    click_vote,
    dwell_weight,
    judge_caps,
    one_chunk_per_document,
    propensity,
)
from docfoundry_grpc.models import ClickCounts, ClickEvent, ClickEvidence, ClickOutcome

CONFIG = ClickConfig()


def test_propensity_falls_with_rank_and_has_a_floor() -> None:
    assert [propensity(r, CONFIG) for r in (1, 2, 4)] == pytest.approx([1.0, 0.5, 0.25])
    assert propensity(50, CONFIG) == CONFIG.min_propensity
    steeper = ClickConfig(eta=2.0, min_propensity=0.01)
    assert propensity(3, steeper) == pytest.approx(1 / 9)


def test_a_deeper_click_votes_more_and_a_bounce_votes_against() -> None:
    assert click_vote(1, 60, CONFIG) == pytest.approx(1.0)
    assert click_vote(4, 60, CONFIG) == pytest.approx(4.0)
    assert click_vote(4, 0, CONFIG) == pytest.approx(4.0)  # dwell unknown: a plain click
    assert dwell_weight(CONFIG.short_dwell_seconds - 0.1, CONFIG) == CONFIG.short_dwell_weight
    assert dwell_weight(CONFIG.short_dwell_seconds, CONFIG) == 1.0
    assert click_vote(2, 1.0, CONFIG) == pytest.approx(CONFIG.short_dwell_weight * 2)


def test_a_click_speaks_for_its_most_specific_identity() -> None:
    base = ClickEvent("q", 1, 1, session_id="s", user_id="u", key_id="k")
    assert click_source(base, "n") == "user:u"
    assert click_source(ClickEvent("q", 1, 1, session_id="s", key_id="k"), "n") == "session:s"
    assert click_source(ClickEvent("q", 1, 1, key_id="k"), "n") == "key:k"
    assert click_source(ClickEvent("q", 1, 1), "n") == "impression:n"


@pytest.mark.parametrize(
    ("counts", "click", "expected"),
    [
        (ClickCounts(True, 0, 0, 0), ClickEvent("q", 1, 1), ClickOutcome.DUPLICATE),
        (
            ClickCounts(False, 3, 0, 0),
            ClickEvent("q", 1, 1, session_id="s"),
            ClickOutcome.SESSION_CAP,
        ),
        (ClickCounts(False, 2, 0, 0), ClickEvent("q", 1, 1, session_id="s"), ClickOutcome.COUNTED),
        (ClickCounts(False, 0, 5, 0), ClickEvent("q", 1, 1, user_id="u"), ClickOutcome.USER_CAP),
        (ClickCounts(False, 0, 0, 1000), ClickEvent("q", 1, 1, key_id="k"), ClickOutcome.KEY_CAP),
        # Counts of an empty identity mean nothing: anonymous clicks are not one session.
        (ClickCounts(False, 9, 9, 9999), ClickEvent("q", 1, 1), ClickOutcome.COUNTED),
    ],
)
def test_caps(counts: ClickCounts, click: ClickEvent, expected: ClickOutcome) -> None:
    assert judge_caps(click, counts, CONFIG) == expected


def test_one_source_adds_at_most_the_bound_however_much_it_votes() -> None:
    evidence = ClickEvidence(1, {7: [1000.0]})
    assert click_boosts(evidence, 2.0, CONFIG) == {7: pytest.approx(CONFIG.source_bound * 2.0)}
    against = ClickEvidence(1, {7: [-1000.0]})
    assert click_boosts(against, 2.0, CONFIG) == {7: pytest.approx(-CONFIG.source_bound * 2.0)}


def test_many_sources_agree_up_to_the_weight_and_few_are_shrunk() -> None:
    one = click_boosts(ClickEvidence(1, {7: [1.0]}), 1.0, CONFIG)[7]
    assert one == pytest.approx(min(CONFIG.source_bound, 1.0 / (1 + CONFIG.prior_sources)))
    unbound = ClickConfig(source_bound=1.0)
    assert click_boosts(ClickEvidence(1, {7: [1.0]}), 1.0, unbound)[7] == pytest.approx(
        1.0 / (1 + CONFIG.prior_sources)
    )
    ten = click_boosts(ClickEvidence(10, {7: [1.0] * 10}), 1.0, CONFIG)[7]
    assert ten == pytest.approx(10 / (10 + CONFIG.prior_sources))
    many = click_boosts(ClickEvidence(50, {7: [5.0] * 50}), 1.0, CONFIG)[7]
    assert many == pytest.approx(CONFIG.weight)  # never past the weight
    # A result clicked by 1 of 10 sources weighs a tenth of one clicked by all 10.
    some = click_boosts(ClickEvidence(10, {7: [1.0]}), 1.0, CONFIG)[7]
    assert some == pytest.approx(ten / 10)


def test_boosts_scale_with_the_top_score_and_need_evidence() -> None:
    evidence = ClickEvidence(2, {7: [1.0, 1.0]})
    rrf, score = (click_boosts(evidence, top, CONFIG)[7] for top in (2 / 61, 2.0))
    assert score / rrf == pytest.approx(61)
    assert click_boosts(ClickEvidence(0, {}), 1.0, CONFIG) == {}
    assert click_boosts(evidence, 0.0, CONFIG) == {}


def test_boosts_rerank_but_never_add() -> None:
    scored = [(1, 3.0), (2, 2.0), (3, 1.0)]
    assert apply_boosts(scored, {3: 2.5, 99: 10.0}) == [(3, 3.5), (1, 3.0), (2, 2.0)]
    assert apply_boosts(scored, {}) == scored
    assert apply_boosts([(1, 1.0), (2, 1.0)], {}) == [(1, 1.0), (2, 1.0)]  # ties keep order


def test_an_impression_round_trips_and_names_positions() -> None:
    tokens = ImpressionTokens("secret")
    token = tokens.issue("Ranking  the\tsearches", "docs", [11, 12, 13], first_rank=11)
    impression = tokens.read(token)
    assert impression.query == "Ranking the searches"  # as typed, spaces folded
    assert (impression.query_key, impression.collection) == ("rank search", "docs")
    assert [impression.position_of(i) for i in (11, 12, 13, 14)] == [11, 12, 13, None]
    assert tokens.read(tokens.issue("q", "docs", [1])).nonce != impression.nonce


@pytest.mark.parametrize("bad", ["", "x", "e30", "bm90IGEgdG9rZW4"])
def test_a_foreign_or_altered_impression_is_refused(bad: str) -> None:
    tokens = ImpressionTokens("secret")
    with pytest.raises(InvalidArgumentError) as info:
        tokens.read(bad)
    assert info.value.field == "impression_id"


def test_an_impression_is_bound_to_the_secret() -> None:
    token = ImpressionTokens("one").issue("q", "docs", [1])
    with pytest.raises(InvalidArgumentError):
        ImpressionTokens("two").read(token)


def test_the_click_settings_come_from_the_environment() -> None:
    env = {
        "SEARCH_CLICK_WEIGHT": "0.5",
        "SEARCH_CLICK_ETA": "0.8",
        "SEARCH_CLICK_SOURCE_BOUND": "0.1",
        "SEARCH_CLICK_SESSION_CAP": "1",
        "SEARCH_CLICK_USER_CAP": "2",
        "SEARCH_CLICK_KEY_CAP": "3",
    }
    clicks = Settings.from_env(env).search.clicks
    assert (clicks.weight, clicks.eta, clicks.source_bound) == (0.5, 0.8, 0.1)
    assert (clicks.session_cap, clicks.user_cap, clicks.key_cap) == (1, 2, 3)
    assert Settings.from_env({"SEARCH_CLICK_WEIGHT": "0"}).search.clicks.describe() == ""


def test_a_document_is_lifted_once_at_its_most_clicked_chunk() -> None:
    boosts = {1: 0.5, 2: 0.5, 3: 0.25, 4: 0.1}
    documents = {1: 10, 2: 10, 3: 11, 4: 12}
    order = [9, 2, 3, 1, 4]
    # Nobody clicked a chunk itself (say, the document was replaced): the best placed.
    assert one_chunk_per_document(boosts, order, documents, {}) == {2: 0.5, 3: 0.25, 4: 0.1}
    # Chunk 1 is the section users clicked, though chunk 2 of its document is placed higher.
    assert one_chunk_per_document(boosts, order, documents, {1: 2}) == {1: 0.5, 3: 0.25, 4: 0.1}
    assert one_chunk_per_document({}, [1, 2], documents, {}) == {}


def forge(secret: str, fields: list[object]) -> str:
    """A token signed with the right key but holding whatever `fields` say: what anyone can
    make when PAGE_TOKEN_SECRET is empty."""
    key = hashlib.sha256(b"docfoundry-impression\x00" + secret.encode()).digest()
    body = json.dumps(fields)
    signature = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
    return base64.urlsafe_b64encode(f"{body}|{signature}".encode()).decode()


GOOD = [1, "q", "docs", [1, 2], 1, "n", 1_700_000_000]


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, 2),  # another version
        (1, ["q"]),
        (2, None),
        (3, 5),
        (3, ["1"]),
        (3, [True]),
        (3, [0]),
        (3, [2**63]),
        (4, "x"),
        (4, 0),
        (4, 10**30),
        (5, 7),
        (6, "abc"),
        (6, 1e400),
    ],
)
def test_a_signed_impression_with_bad_fields_is_refused(index: int, value: object) -> None:
    tokens = ImpressionTokens("")
    assert tokens.read(forge("", GOOD)).chunk_ids == (1, 2)
    fields = list(GOOD)
    fields[index] = value
    with pytest.raises(InvalidArgumentError):
        tokens.read(forge("", fields))
    with pytest.raises(InvalidArgumentError):
        tokens.read(forge("", GOOD[:-1]))

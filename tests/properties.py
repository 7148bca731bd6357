"""The Hypothesis settings every property test file of this suite shares."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def property_settings(max_examples: int, *also_suppress: HealthCheck) -> settings:
    """`max_examples` examples, no deadline (CI machines are busy), no example database
    (no .hypothesis folder in the working tree), slow generation allowed, and the health
    checks a file's strategies trip on purpose in `also_suppress`."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, *also_suppress],
    )

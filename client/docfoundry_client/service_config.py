"""The client channel's default gRPC service config: retries and load balancing.

Why retries here, and not in a loop around each call: gRPC retries a call itself, below
the client, only while that is safe (before any response has arrived), with jittered
exponential backoff, within a deadline that covers every attempt, and with a budget per
channel (retryThrottling: when most recent calls fail, it stops retrying rather than
multiply the load on a server that is down). A loop above the client would have to redo all
of that. Only UNAVAILABLE is retried (a server restarting, a connection dropped, a
database briefly away), and only on the idempotent methods, the reads: a retried
IndexDocuments, DeleteDocument(s), RecordClick, CreateCollection or DeleteCollection could
take effect twice (a click counted twice) or fail for having succeeded the first time.

Why round_robin: gRPC's default policy, pick_first, sends every call to the first address
that answers. With round_robin, a target that resolves to several addresses, such as
`dns:///docfoundry.internal:50051` naming several servers (a Kubernetes headless Service),
spreads calls over all of them and leaves out a server that has gone until it is back. With
one address it is the same as pick_first.

A caller replaces these with their own `grpc.service_config` (or adds any other channel
option) through the client's `options` argument.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

ChannelOption = tuple[str, Any]

_PACKAGE = "docfoundry.v1"
IDEMPOTENT_METHODS: dict[str, tuple[str, ...]] = {
    "SearchService": ("Fulltext", "Semantic", "Hybrid", "Health"),
    "IndexService": ("GetDocument", "ListDocuments"),
    "CollectionService": ("GetCollection", "ListCollections"),
}

RETRY_POLICY: dict[str, Any] = {
    # The first call and up to 3 retries, about 0.1, 0.2 and 0.4 s apart (randomized down
    # from those by gRPC's jitter); the call's deadline still bounds the whole.
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

SERVICE_CONFIG: dict[str, Any] = {
    "loadBalancingConfig": [{"round_robin": {}}],
    # gRFC A6: each failed call takes a token, each success gives back 0.1; no retries
    # while fewer than half of maxTokens are left.
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    "methodConfig": [
        {
            "name": [
                {"service": f"{_PACKAGE}.{service}", "method": method}
                for service, methods in IDEMPOTENT_METHODS.items()
                for method in methods
            ],
            "retryPolicy": RETRY_POLICY,
        }
    ],
}

DEFAULT_CHANNEL_OPTIONS: tuple[ChannelOption, ...] = (
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
)


def channel_options(overrides: Sequence[ChannelOption] = ()) -> list[ChannelOption]:
    """The default options with `overrides` applied: an option the caller names replaces
    the default of that name, others are added."""
    merged = dict(DEFAULT_CHANNEL_OPTIONS)
    merged.update(overrides)
    return list(merged.items())

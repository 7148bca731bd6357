"""The py-spy summary used for the benchmark report's profiles."""

from __future__ import annotations

from bench.profile import read_profile, summary

LOOP = "thread (7): MainThread;run (asyncio/base_events.py:607)"
RANK = "rank (docfoundry_grpc/storage/postgres/segments.py:57)"
RAW = [
    f"{LOOP};{RANK};top_chunks (docfoundry_grpc/bm25.py:92) 30",
    f"{LOOP};{RANK} 10",
    f"{LOOP};snippet (docfoundry_grpc/snippets.py:28) 20",
    "thread (9): embed-query_0;run (/x/lib/python3.11/site-packages/onnxruntime/s.py:406) 40",
    "not a sample line",
]


def test_threads_and_inclusive_and_self_shares() -> None:
    profile = read_profile(RAW)
    assert profile.threads == {"MainThread": 60, "embed-query_0": 40}
    main = profile.inclusive["MainThread"]
    assert main["run (asyncio/base_events.py)"] == 60
    assert main["rank (docfoundry_grpc/storage/postgres/segments.py)"] == 40
    assert profile.own["MainThread"]["top_chunks (docfoundry_grpc/bm25.py)"] == 30
    assert profile.own["embed-query_0"] == {"run (onnxruntime/s.py)": 40}
    text = summary(profile, top=2)
    assert "| MainThread | 60 | 60.0% |" in text
    assert "| `rank (docfoundry_grpc/storage/postgres/segments.py)` | 40 | 66.7% |" in text
    assert "snippet" not in text.split("by self share")[0]  # third by inclusive share: cut
    assert "`run (asyncio/base_events.py)`" not in text  # on every sample: the entry frame
    assert summary(read_profile([])) == "No samples.\n"

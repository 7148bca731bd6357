"""The committed generated code (client/docfoundry/v1) is what scripts/gen_protos.sh makes of
the committed .proto: messages, gRPC stubs, their mypy-protobuf stubs and the descriptor set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "client" / "docfoundry" / "v1"


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "scripts/gen_protos.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    fresh = tmp_path / "docfoundry" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == [
        "search.binpb",
        "search_pb2.py",
        "search_pb2.pyi",
        "search_pb2_grpc.py",
        "search_pb2_grpc.pyi",
    ]
    for name in names:
        assert (fresh / name).read_bytes() == (GENERATED / name).read_bytes(), (
            f"{name} is stale: run scripts/gen_protos.sh"
        )

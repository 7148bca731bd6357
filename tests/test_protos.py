"""The committed stubs are what protoc makes of the committed .proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_stubs_match_proto(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--descriptor_set_out={tmp_path / 'docfoundry/v1/search.binpb'}",
            "--include_source_info",
            "--include_imports",
            str(ROOT / "protos/docfoundry/v1/search.proto"),
        ],
        check=True,
    )
    for name in ("search_pb2.py", "search_pb2.pyi", "search_pb2_grpc.py", "search.binpb"):
        fresh = (tmp_path / "docfoundry/v1" / name).read_bytes()
        committed = (ROOT / "docfoundry/v1" / name).read_bytes()
        assert fresh == committed, f"{name} is stale: run scripts/gen_protos.sh"

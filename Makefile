# One entry point for every routine. The two set-up commands are `make run` and `make test`.
.DEFAULT_GOAL := help
SHELL := /bin/bash

HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

# uv from the PATH, or a private copy installed on first use (a fresh machine may have none).
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
# The project's own Python packages (what the web and worker processes import).
PYTHON_PACKAGES := accounts gateway keys llmapi plans

.PHONY: help run test lint format sync system-packages worker beat bench

help:
	@echo "make run     start the product on http://$(HOST):$(PORT) (embedded SQLite, no Redis needed)"
	@echo "make test    run the whole test suite against PostgreSQL and Redis (installs Chromium and nginx if missing)"
	@echo "make sync    create .venv from uv.lock; then .venv/bin/python manage.py ... runs any command"
	@echo "make lint    ruff lint and format check"
	@echo "make format  apply ruff's formatting and fixes"
	@echo "make worker  start a Celery worker;  make beat  start Celery beat"

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

# Bytecode is compiled at install, as a production image would have it: a process that compiles its
# imports as it starts (PYTHONDONTWRITEBYTECODE, a read-only tree) starts slower and keeps the
# compiler's garbage, about 10 MB per worker. The project's own modules are compiled on every sync
# (only those that changed), the packages when the lock changes.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

sync: .venv/.synced
	@.venv/bin/python -m compileall -q $(PYTHON_PACKAGES)

# The npm packages the tests drive (tests/wire: TypeScript SDK, Claude Code; tests/e2e: axe-core),
# again whenever a lock changes. Without npm the rest of the suite still runs, and those tests fail
# saying what is missing.
NPM_FOLDERS := tests/wire tests/e2e
%/node_modules/.synced: %/package.json %/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix $* --no-audit --no-fund && touch $@; \
	else echo "npm not found: the tests in $* need Node.js and npm" >&2; fi

# The development settings every manage.py command reads (manage.py loads .env; exported variables
# win): DEBUG=1 and secrets generated once, so no command needs a hand-exported variable.
.env:
	@printf '%s\n' "# Development settings written once by make run (git-ignored); exported variables win." \
	  "DEBUG=1" \
	  "SECRET_KEY=$$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	  "API_KEY_HASH_SECRET=$$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	  "UPSTREAM_SECRET_KEYS=$$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')" \
	  > $@
	@echo "Wrote .env: DEBUG=1 and generated secrets for development"

# Every URL the pages show (docs, "copy both variables", emails) names the address served here,
# unless PUBLIC_BASE_URL says otherwise.
run: sync .env
	$(UV) run python manage.py migrate --noinput
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} $(UV) run python manage.py runserver $(HOST):$(PORT)

# System packages the tests drive: Debian's Chromium (tests/e2e; Playwright never downloads a browser)
# and nginx (the reverse-proxy tests). Installed with apt-get when missing and running as root;
# otherwise make stops and names the command to run.
SYSTEM_PACKAGES := chromium:/usr/bin/chromium nginx:/usr/sbin/nginx
system-packages:
	@missing=""; \
	for entry in $(SYSTEM_PACKAGES); do [ -x "$${entry#*:}" ] || missing="$$missing $${entry%%:*}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing$$missing with apt-get"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
	  echo "The tests need$$missing. Install with: sudo apt-get install$$missing  (then run make test again)" >&2; \
	  exit 1; \
	fi

test: sync system-packages $(NPM_FOLDERS:%=%/node_modules/.synced)
	SECRET_KEY=$${SECRET_KEY:-test-only-secret-key} \
	API_KEY_HASH_SECRET=$${API_KEY_HASH_SECRET:-test-only-api-key-hash-secret} \
	UPSTREAM_SECRET_KEYS=$${UPSTREAM_SECRET_KEYS:-dGVzdC1vbmx5LXVwc3RyZWFtLXNlY3JldC1rZXktMzI=} \
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(UV) run pytest $(PYTEST_ARGS)

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format: sync
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

worker: sync
	$(UV) run celery -A llmapi worker --loglevel INFO

beat: sync
	$(UV) run celery -A llmapi beat --loglevel INFO

# Load and latency benchmarks (bench/README.md): `make bench` for the full run (about 10 minutes),
# `make bench BENCH_ARGS=--quick` for short runs; the report goes to bench/results/.
bench: sync
	$(UV) run python -m bench.run $(BENCH_ARGS)

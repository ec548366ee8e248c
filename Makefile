# ferry — set-up, tests and lint. `make setup` prepares a fresh Debian machine; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_PROGRAMS := initdb pg_ctl pg_dump pg_restore psql
# ferry's version (pyproject.toml's), the container image's tag.
VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -n 1)

.PHONY: setup system-packages test lint format rehearse bench-setup bench image clean

setup: system-packages $(STAMP)

# PostgreSQL and Redis server and client programs: the tests start real servers.
system-packages:
	@missing=""; for p in $(PG_PROGRAMS); do \
	  command -v $$p >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/$$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing PostgreSQL programs:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null; \
	  else \
	    echo "error: PostgreSQL programs missing:$$missing; install the postgresql and postgresql-client packages" >&2; exit 1; \
	  fi; \
	fi
	@if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing redis-server"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; \
	  else \
	    echo "error: redis-server missing; install the redis-server package" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -n 2 -q

rehearse: setup
	$(BIN)/ferry rehearse

lint: setup
	$(BIN)/ruff check migration stacks tests bench __main__.py
	$(BIN)/ruff format --check migration stacks tests bench __main__.py
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format migration stacks tests bench __main__.py
	$(BIN)/ruff check --fix migration stacks tests bench __main__.py

# The peers the benchmark runs against ferry (Debian's pgcopydb).
bench-setup: setup
	@command -v pgcopydb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pgcopydb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgcopydb >/dev/null)

bench: bench-setup
	$(BIN)/python bench/pg_copy.py
	$(BIN)/python bench/redis_copy.py
	$(BIN)/python bench/s3_sync.py
	$(BIN)/python bench/capture_overhead.py

# ferry's container image (Dockerfile), ferry:$(VERSION), with docker or else podman; for the platform the
# stack's Fargate task runs on (X86_64), whatever this machine is.
IMAGE_PLATFORM ?= linux/amd64
image:
	@engine="$$(command -v docker || command -v podman)"; \
	if [ -z "$$engine" ]; then echo "error: neither docker nor podman is installed; one is needed to build the image" >&2; exit 1; fi; \
	set -x; "$$engine" build --platform $(IMAGE_PLATFORM) --build-arg FERRY_VERSION=$(VERSION) -t ferry:$(VERSION) . \
	  && "$$engine" image ls ferry:$(VERSION)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

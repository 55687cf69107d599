# mailwarden: `make run` starts the main job on the embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps run test lint typecheck pytest bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "mailwarden needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Until the gateway exists: an offline SPF demo against the bundled example zone.
run: install
	$(BIN)/mailwarden spf check --dns-zone examples/example.zone --receiver mx.example.net \
		--ip 192.0.2.10 --mail-from alice@example.com --helo mail.example.com
	$(BIN)/mailwarden spf check --dns-zone examples/example.zone --receiver mx.example.net \
		--ip 203.0.113.66 --mail-from alice@example.com --helo spammer.example
	$(BIN)/mailwarden spf check --dns-zone examples/example.zone --receiver mx.example.net \
		--ip 198.51.100.7 --mail-from bob@example.org --helo relay.example.org

# Debian packages the tests need (redis-server, ...), installed when missing.
system-deps:
	tools/system-deps.sh

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy --strict src

pytest: install
	$(BIN)/pytest -q

test: system-deps lint typecheck pytest

bench: install
	for bench in benchmarks/*_bench.py; do $(BIN)/python $$bench || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# mailwarden: `make run` starts the main job on the embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps run test lint typecheck pytest bench clean lab lab-clean

# Bytecode compiled ahead (checked against the sources each time, so an update is compiled too):
# with PYTHONDONTWRITEBYTECODE set, as on some CI machines, every command would otherwise
# compile its 130 modules again at start-up (0.1 s of each `mailwarden` command).
install: $(STAMP)
	$(BIN)/python -m compileall -q src >/dev/null

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "mailwarden needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The receiving gateway on the embedded defaults, offline: DNS from the bundled demo zone, mail
# accepted for example.net delivered into the built-in sink (data/sink/Maildir).
DEMO_SWAKS := swaks --server 127.0.0.1:2525 --helo mail.example.com --from alice@example.com \
	--to postmaster@example.net
run: install
	@echo "mailwarden demo: the gateway on 127.0.0.1:2525, DNS from examples/demo.zone"
	@echo "  accepted (SPF, DKIM and DMARC pass): $(DEMO_SWAKS) --data @examples/legit.eml"
	@echo "  refused (From forged, DMARC p=reject): $(DEMO_SWAKS) --data @examples/spoof.eml"
	@echo "  delivered mail lands in data/sink/Maildir/new; Ctrl-C stops the gateway"
	$(BIN)/mailwarden serve --dns-zone examples/demo.zone --local-domain example.net \
		--hostname mx.example.net --data-dir data

# Debian packages the tests need (redis-server, ...), installed when missing.
system-deps:
	tools/system-deps.sh

lint: install
	$(BIN)/ruff check src tests benchmarks lab
	$(BIN)/ruff format --check src tests benchmarks lab

typecheck: install
	$(BIN)/mypy --strict src lab

pytest: install
	$(BIN)/pytest -q

test: system-deps lint typecheck pytest

bench: install system-deps
	for bench in benchmarks/*_bench.py; do $(BIN)/python $$bench || exit 1; done

# The whole journey of a message on real hosts (network namespaces; needs root): DNS, a.example's
# MSA and MTA, b.example's MX and mailbox, a mailing list, a forwarder and a zombie, each scenario
# told step by step, then a summary table. Nothing is left running; logs and mailboxes stay in
# /tmp/mailwarden-lab. `make lab-clean` removes what an interrupted run left.
lab: install system-deps
	$(BIN)/python -m lab

# Standard library only: works without the virtualenv.
lab-clean:
	$(PYTHON) -m lab clean

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find src -name __pycache__ -prune -exec rm -rf {} +

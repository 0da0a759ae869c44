# Lämpiö Live. `make run` serves on http://127.0.0.1:8080; `make test` installs what the suite needs
# on a fresh Debian machine and runs ruff, mypy and pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8080
# WebRTC host candidate of the local node: loopback keeps `make run` on this machine. To watch from
# another device, run e.g. `make run ICE_HOST=192.168.1.20 HOST=0.0.0.0`.
ICE_HOST ?= 127.0.0.1
HOST ?= 127.0.0.1

.PHONY: install system-deps bench-deps run test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Debian's redis-server (the Redis bus tests), chromium (browser tests, driven by Playwright),
# strace (tests/test_privacy.py: every file a node opens), haproxy (tests/test_haproxy.py: nodes
# behind a load balancer), coturn (tests/test_turn.py: viewers through TURN over TCP and TLS), and
# iproute2 and nftables (tests/netns.py: viewers in network namespaces on shaped, lossy links; the
# tests need root); the tests run their own haproxy and turnserver, not the Debian services.
system-deps:
	@if ! command -v redis-server >/dev/null || [ ! -x /usr/bin/chromium ] \
			|| [ ! -x /usr/bin/strace ] || [ ! -x /usr/sbin/haproxy ] \
			|| [ ! -x /usr/bin/turnserver ] || [ ! -x /usr/sbin/tc ] \
			|| [ ! -x /usr/sbin/nft ]; then \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
			redis-server chromium strace haproxy coturn iproute2 nftables fonts-dejavu-core \
			fonts-noto-color-emoji; \
	fi

run: install
	$(BIN)/lampio-stream serve --host $(HOST) --port $(PORT) --ice-host $(ICE_HOST) --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# axe-core, the accessibility rules the browser tests inject into every page (tests/a11y.py).
AXE_VERSION := 4.14.1
AXE := .axe/node_modules/axe-core/axe.min.js

$(AXE):
	npm install --silent --no-audit --no-fund --prefix .axe axe-core@$(AXE_VERSION)

test: install system-deps $(AXE) lint
	$(BIN)/pytest

# Janus Gateway for bench/peer_janus.py, and gcc to build its loopback shim (bench/_janus_lo.c);
# only the benchmarks need them, so `make test` does not install them.
bench-deps:
	@if ! command -v janus >/dev/null || ! command -v gcc >/dev/null; then \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
			janus gcc libc6-dev; \
	fi

# Every bench/*.py script with its defaults (modules named _*.py are their helpers).
bench: install bench-deps
	@found=0; for f in bench/*.py; do case $$(basename $$f) in _*) continue;; esac; \
		[ -f "$$f" ] || continue; found=1; echo "== $$f"; $(BIN)/python $$f || exit 1; done; \
	[ $$found = 1 ] || echo "no benchmarks yet"

clean:
	rm -rf $(VENV) .axe .pytest_cache .mypy_cache .ruff_cache

# The two set-up commands: `make run` starts the app on the sample database, `make test` runs
# every test. Each creates the virtual environment and installs what it needs on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test seed bench chromium postgresql clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Headless Chromium for the browser tests (Debian package; Playwright drives it).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

# PostgreSQL server binaries for the tests' own server (Debian package; the tests run initdb and
# pg_ctl themselves, on a port and socket directory of their own, loopback only).
postgresql:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

# Demo mode (BACKLINE_DEMO=1): no sign-in, a role switcher, on the generated sample only.
run: $(STAMP)
	BACKLINE_DEMO=1 $(PY) -m dashboard run

test: $(STAMP) chromium postgresql
	$(PY) -m pytest

seed: $(STAMP)
	$(PY) -m dashboard seed --force

bench: $(STAMP)
	$(PY) -m dashboard bench

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis

# The two set-up commands: `make run` starts the app on the sample database, `make test` runs
# every test. Each creates the virtual environment and installs what it needs on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test seed bench chromium clean

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

# Demo mode (BACKLINE_DEMO=1): no sign-in, a role switcher, on the generated sample only.
run: $(STAMP)
	BACKLINE_DEMO=1 $(PY) -m dashboard run

test: $(STAMP) chromium
	$(PY) -m pytest

seed: $(STAMP)
	$(PY) -m dashboard seed --force

bench: $(STAMP)
	$(PY) -m dashboard bench

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis

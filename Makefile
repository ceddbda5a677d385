# The README's two commands: `make run` and `make test`. Each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
HTMX   := portal/static/vendor/htmx.min.js
PORT   ?= 5000

.PHONY: run test lint install htmx chromium bench clean

run: install htmx
	$(PY) scripts/run_demo.py --port $(PORT)

test: install htmx chromium lint
	$(PY) -m pytest

# The gates before the suite: formatting, lint, types (configured in pyproject.toml).
LINTED := portal tests entrasim bench scripts wsgi.py gunicorn.conf.py
lint: install
	$(VENV)/bin/ruff format --check --quiet $(LINTED)
	$(VENV)/bin/ruff check --quiet $(LINTED)
	$(VENV)/bin/mypy

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

htmx:
	@scripts/fetch_htmx.sh

# Browser tests drive Debian's Chromium (Playwright's own browser download is not reachable).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "error: browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium'" >&2; exit 1; \
	  fi; \
	fi

bench: install htmx
	$(PY) bench/simulator.py
	$(PY) bench/verify.py
	$(PY) bench/validate.py
	$(PY) bench/api.py
	$(PY) bench/metrics.py

clean:
	rm -rf $(VENV) portal/static/vendor .pytest_cache

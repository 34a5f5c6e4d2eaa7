# Pushflow: `make run` starts it on the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test test-fast lint bench install install-dev clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(PY) -m config.launcher

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

# Every tier: unit and API tests on SQLite, the same suite on PostgreSQL (less the
# end-to-end tests, which choose their own databases, and the API fuzzing, which does not
# depend on the database), and the end-to-end tests that start real servers and Celery
# workers (SQLite + embedded broker, PostgreSQL + Redis).
test: $(VENV)/.installed-dev lint
	$(VENV)/bin/pytest -q --durations=15
	PUSHFLOW_TEST_DATABASE=postgres $(VENV)/bin/pytest -q --durations=10 -m "not e2e and not fuzz"

test-fast: $(VENV)/.installed-dev
	$(VENV)/bin/pytest -q -m "not e2e"

bench: $(VENV)/.installed-dev
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) var

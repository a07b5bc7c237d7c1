# Two commands on a fresh machine: `make run` and `make test`. Everything else is a helper
# (`make worker` in a second terminal sends webhooks, flags overdue referrals and sweeps old rows).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run worker test lint typecheck pytest bench schema clean destroy-local-database lock

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

# Re-resolve the dependencies from pyproject.toml alone and pin what was resolved.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[test]'
	{ head -2 requirements.lock; .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^pamoja'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

run: $(STAMP)
	$(BIN)/pamoja serve

worker: $(STAMP)
	$(BIN)/pamoja worker

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy api auth cli config console db domain partners migrations

pytest: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.run

schema: $(STAMP)
	$(BIN)/pamoja schema > schema.graphql

# Dependencies and caches only: the local database (below) holds what was entered and is kept.
clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The embedded PostgreSQL `make run` keeps under var/ (PAMOJA_DATA_DIR): deleting it loses every record,
# so it has its own name, refuses while the server runs, and asks first (scripts pass CONFIRM=yes).
LOCAL_DATABASE := $(or $(PAMOJA_DATA_DIR),var)/pgdata

destroy-local-database:
	@if [ -f '$(LOCAL_DATABASE)/postmaster.pid' ] && kill -0 "$$(head -n 1 '$(LOCAL_DATABASE)/postmaster.pid')" 2>/dev/null; then \
		echo "PostgreSQL is running on $(LOCAL_DATABASE): stop make run and make worker first" >&2; exit 1; \
	fi
	@if [ "$(CONFIRM)" != yes ]; then \
		printf 'Delete the local database in %s and every record in it, for good? [y/N] ' '$(LOCAL_DATABASE)'; \
		read -r answer || echo; \
		case "$$answer" in y|Y|yes|Yes|YES) ;; *) echo "kept $(LOCAL_DATABASE)"; exit 1;; esac; \
	fi
	rm -rf -- '$(LOCAL_DATABASE)'
	@echo "deleted $(LOCAL_DATABASE); the next make run starts an empty one"

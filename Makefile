# The two commands a newcomer needs: `make demo` (embedded: SQLite, tasks in-process) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `make test` runs against real services; override these to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/soc_console
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

DEMO_MAILBOXES ?= 200
DEMO_DAYS ?= 8
DEMO_COMPROMISED ?= 4

.PHONY: install demo test test-fast lint format bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/python manage.py migrate --no-input
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/python manage.py seed_demo \
		--mailboxes $(DEMO_MAILBOXES) --days $(DEMO_DAYS) --compromised $(DEMO_COMPROMISED)
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/python manage.py create_role_logins
	@echo "Console: http://127.0.0.1:8000/  (Ctrl-C to stop)"
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/python manage.py runserver 127.0.0.1:8000

test: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_BROKER_URL)} \
	SECRET_KEY=test-only-secret DEBUG=false STATIC_MANIFEST=false ALLOWED_HOSTS='*' SECURE_SSL_REDIRECT=false \
	$(BIN)/pytest $(PYTEST_ARGS)

# The suite without the slow parts (no real Celery worker, no browser, no private mail server): a few minutes.
test-fast: $(STAMP)
	$(MAKE) test PYTEST_ARGS='-m "not worker and not browser and not mailserver" $(PYTEST_ARGS)'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/mypy
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/python manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/soc_console_bench} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/14} \
	SECRET_KEY=bench-only-secret DEBUG=false STATIC_MANIFEST=false ALLOWED_HOSTS='*' SECURE_SSL_REDIRECT=false \
	$(BIN)/python bench/run.py

screenshots: $(STAMP)
	env -u DATABASE_URL -u CELERY_BROKER_URL -u REDIS_URL $(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles

# The two README commands: `make run` and `make test` (and `make lint` for style, types and layers).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint hooks install system-packages node-tools clean

run: install system-packages ## Install, start what is missing (Redis, MongoDB-wire server, worker), serve on :8888
	$(BIN)/python -m dispatch.tools.devservices run

# Test processes: each starts its own throw-away services and takes whole test files (`--dist loadfile`).
TEST_WORKERS ?= 2
# Coverage of the suite and the processes it starts (settings and floor in pyproject.toml): the least
# covered modules and the total in the terminal, the HTML report in var/coverage/. A partial run
# (PYTEST_ARGS="-k ...") falls below the floor: run it with COVERAGE= to leave coverage out.
COVERAGE ?= --cov --cov-report=term --cov-report=html

test: install system-packages node-tools lint ## Install, lint, start throw-away services on free ports, run the whole suite with coverage
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(COVERAGE) $(PYTEST_ARGS)

lint: install ## ruff (lint and format check), mypy and the import contracts (configured in pyproject.toml); all run, any failure fails
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy || status=1; \
	$(BIN)/lint-imports || status=1; \
	exit $$status

hooks: install ## Install the git pre-commit hook: .pre-commit-config.yaml, the lint step plus file hygiene, offline
	$(BIN)/pre-commit install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

system-packages: ## Debian packages the services and browser tests need, installed only when absent
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); updated=; \
	if [ -z "$$DISPATCH_REDIS_URL" ] && ! command -v redis-server >/dev/null; then \
		echo "installing redis-server (Debian package)"; \
		$$SUDO apt-get update -qq && updated=1 && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server || exit 1; \
	fi; \
	if [ ! -x /usr/bin/chromium ]; then \
		echo "installing chromium for the console's browser tests (Debian package)"; \
		{ [ -n "$$updated" ] || $$SUDO apt-get update -qq; } && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-liberation \
		|| echo "chromium could not be installed: the browser tests (tests/browser) will be skipped"; \
	fi

# The OpenAPI linter the documentation tests run (tests/handlers/test_openapi_lint.py), pinned, project-local.
REDOCLY_VERSION := 2.77.0
NODE_DIR := var/node
REDOCLY := $(NODE_DIR)/node_modules/.bin/redocly

node-tools: ## npm's @redocly/cli into var/node, installed only when absent (the lint test is skipped without it)
	@if [ ! -x $(REDOCLY) ] || ! grep -q '"version": "$(REDOCLY_VERSION)"' $(NODE_DIR)/node_modules/@redocly/cli/package.json; then \
		if command -v npm >/dev/null; then \
			echo "installing @redocly/cli $(REDOCLY_VERSION) into $(NODE_DIR) (npm)"; \
			mkdir -p $(NODE_DIR) && npm install --prefix $(NODE_DIR) --save-exact --no-audit --no-fund --loglevel=error \
				@redocly/cli@$(REDOCLY_VERSION) \
			|| echo "@redocly/cli could not be installed: the OpenAPI lint test will be skipped"; \
		else \
			echo "npm is absent: the OpenAPI lint test will be skipped"; \
		fi; \
	fi

clean:
	rm -rf $(VENV) var *.egg-info

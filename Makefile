# The two README commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install system-packages clean

run: install system-packages ## Install, start what is missing (Redis, MongoDB-wire server, worker), serve on :8888
	$(BIN)/python -m dispatch.devservices run

test: install system-packages ## Install, start throw-away services on free ports, run the whole suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

system-packages: ## Debian packages the services need, installed only when absent
	@if [ -z "$$DISPATCH_REDIS_URL" ] && ! command -v redis-server >/dev/null; then \
		echo "installing redis-server (Debian package)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server; \
	fi

clean:
	rm -rf $(VENV) var *.egg-info

# One place for the commands a developer, CI (.ci/run) and the container use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test lint pytest plugin-test real-shop-test system-deps venv constraints bench dist clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

venv: $(BIN)/.installed

system-deps:
	bash .ci/system-deps.sh

## Run the bridge: sidecar web + worker; the KeyCRM simulator when KEYCRM_API_KEY is not set.
run: venv
	keycrm-bridge run

## Every check and test: lint (ruff, mypy, php -l, phpcs), the Python suite, the plugin suite, the real-shop suite.
test: system-deps venv lint pytest plugin-test real-shop-test

lint: venv
	ruff check sidecar tests bench
	mypy
	bash wp-plugin/tests/run.sh --lint

pytest: venv
	pytest -q

plugin-test: venv
	bash wp-plugin/tests/run.sh

## The plugin's zip on a real WordPress + WooCommerce shop with the sidecar (docs/development.md);
## prints one line and succeeds when the shop's sources are not on this machine.
real-shop-test: venv
	$(BIN)/python tests/realshop/run.py

bench: venv
	$(BIN)/python bench/push.py --quick

## Re-pin constraints.txt (used by `make venv` and the Dockerfile) from a fresh venv after a change of
## pyproject.toml's dependencies.
constraints:
	rm -rf .venv-pin && $(PY) -m venv .venv-pin && .venv-pin/bin/pip install -q -e '.[test]'
	{ sed -n '1,2p' constraints.txt; .venv-pin/bin/pip freeze --exclude-editable | grep -v '^keycrm-bridge'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-pin

dist:
	$(MAKE) -C wp-plugin dist

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

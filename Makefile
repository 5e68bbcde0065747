# Two entry points (see README): `make demo` runs the main job, `make test` runs the test suite.
# Each creates ./.venv on first use and installs the tested dependency set (constraints.txt).

VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Prefer Python 3.12 (zarr >= 3.2 needs it); fall back to any python3 >= 3.11.
PYTHON ?= $(shell for p in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null) python3.11 python3; do \
             $$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { echo $$p; break; }; done)
DEMO_OUT ?= demo-data

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt Makefile
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.11 found"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel setuptools
	# compat: the checkout goes on sys.path as a path entry, so `storage` is found as a regular package
	# even where a folder of that name comes first (a Dask worker's spill folder); the default import
	# hook would lose to it.
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]' --config-settings editable_mode=compat
	# Compile bytecode once: importing prefect is ~2x slower without it (PYTHONDONTWRITEBYTECODE is set here).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/stad demo --out $(DEMO_OUT)

test: $(STAMP)
	# The viewer's browser test drives Debian's headless chromium (installed once; needs root + apt).
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: chromium not installed: tests/flows/test_viewer_chromium.py will skip"
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

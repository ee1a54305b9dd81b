# evsed: two entry points on a fresh Debian / Raspberry Pi OS machine.
#   make demo  - a scripted charging session on simulated hardware
#   make test  - the whole test suite, lint (ruff) and type check (mypy)
# Each creates the virtual environment it needs; as root it also installs missing Debian
# packages with apt-get.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Debian packages the project needs on the machine (python3-venv for the virtualenv).
APT_PACKAGES ?= python3-venv

.PHONY: demo test lint typecheck pytest system-deps venv clean

demo: venv
	$(PY) -m evsed.devcsms.demo

test: venv lint typecheck pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(PY) -m pytest

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "evsed needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else \
			echo "note: missing Debian packages:$$missing (run as root to install them)"; \
		fi; \
	fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# evsed: two entry points on a fresh Debian / Raspberry Pi OS machine.
#   make demo  - a scripted charging session on simulated hardware
#   make test  - the whole test suite, lint (ruff) and type check (mypy)
# Each creates the virtual environment it needs; as root it also installs missing Debian
# packages with apt-get.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Debian packages the project needs on the machine (python3-venv for the virtualenv; nodejs and
# npm for the independent OCPP schema check of the end-to-end tests, tests/schema). These two
# only where their commands are missing: NodeSource's nodejs package bundles npm and conflicts
# with Debian's npm package.
# rauc, squashfs-tools, e2fsprogs, dbus and openssl run RAUC for real in the firmware-update
# tests and in `make demo-ota` (a private D-Bus session, file-backed A/B slots, signed bundles);
# casync makes and installs the delta (casync) bundles (rauc convert, rauc install).
# systemd brings systemd-analyze (the unit checks) and systemd-journald (the journal logging
# test); libsystemd-dev and pkg-config build systemd-python, the optional `systemd` extra.
# faketime steps the daemon's wall clock in tests/reliability/test_clock_steps.py.
APT_PACKAGES ?= python3-venv $(if $(shell command -v node),,nodejs) $(if $(shell command -v npm),,npm) \
	rauc squashfs-tools e2fsprogs dbus openssl casync systemd libsystemd-dev pkg-config faketime
SCHEMA_DIR := tests/schema

.PHONY: demo demo-ota test lint typecheck pytest bench schema-deps system-deps venv clean

demo: venv
	$(PY) -m evsed_devtools.demo

# A firmware update through the real rauc on simulated hardware (needs root, see README).
demo-ota: venv
	$(PY) -m evsed_devtools.demo_ota

test: venv lint typecheck pytest

# The benchmarks (bench/README.md; the figures and their targets: docs/results.md). Each prints
# its figures with the machine's load; none fails on a missed target. BENCH_FLEET_N=20 runs a
# smaller fleet on a loaded machine; delta_update.py needs root and RAUC and is run by hand.
BENCH_FLEET_N ?= 100
BENCH_FLEET_CUT_S ?= 60
bench: venv
	$(PY) bench/startup.py
	$(PY) bench/safety_latency.py --load idle
	$(PY) bench/safety_latency.py --load heavy
	$(PY) bench/limit_latency.py
	$(PY) bench/cpu_charging.py
	$(PY) bench/memory_day.py
	$(PY) bench/ota_download.py
	$(PY) bench/offline_replay.py
	$(PY) bench/fleet.py --n $(BENCH_FLEET_N) --cut-s $(BENCH_FLEET_CUT_S)

# ruff, and oelint-adv over the Yocto layer's recipes (offline; yocto-layer/lint says how).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	yocto-layer/lint $(VENV)/bin/oelint-adv

typecheck: venv
	$(VENV)/bin/mypy

# Two workers: the suite waits on daemons and sockets more than it computes. A test file stays
# on one worker (its module fixtures, e.g. the journald one, are not shared).
PYTEST_WORKERS ?= 2
pytest: venv schema-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# npm packages of the OCPP schema check, installed exactly as locked in package-lock.json.
schema-deps: $(SCHEMA_DIR)/node_modules/.package-lock.json
	@$(REQUIRE_NODE)

$(SCHEMA_DIR)/node_modules/.package-lock.json: $(SCHEMA_DIR)/package-lock.json | system-deps
	@$(REQUIRE_NODE)
	cd $(SCHEMA_DIR) && npm ci --no-audit --no-fund --no-update-notifier
	touch $@

REQUIRE_NODE = command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	echo "error: the tests check OCPP frames with Node.js, but node or npm is missing:"; \
	echo "  install the Debian packages nodejs and npm (make does so when run as root)"; \
	exit 1; }

venv: $(VENV)/.installed

# The daemon with its test tools (the dev extra), and the development CSMS with the harness, the
# RAUC sandbox and the demos (devcsms/, its own distribution: not part of the device wheel).
$(VENV)/.installed: pyproject.toml devcsms/pyproject.toml | system-deps
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "evsed needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./devcsms
	$(PY) -m pip install --quiet -e '.[systemd]' || echo "note: systemd-python did not build" \
		"(it needs libsystemd-dev and pkg-config): the journal logging tests will be skipped"
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

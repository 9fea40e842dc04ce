# The quick start: `make demo` boots the test guest through winarm; `make test` runs the whole suite.
# Both install what they need (Debian packages, a virtual environment) and are quick the second time.

PYTHON ?= python3
VENV   ?= .venv
CACHE  ?= $(HOME)/.cache/winarm
WINARM := $(VENV)/bin/winarm
export WINARM_CACHE := $(CACHE)

.PHONY: deps venv guest demo check test lint bench image clean

deps:
	@bash scripts/install-deps

# winarm with its test extra, and the test guest (winarm_testbed/, a distribution of its own that winarm's
# runtime install leaves out), both editable.
$(VENV)/.installed: setup.cfg pyproject.toml winarm_testbed/pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' -e ./winarm_testbed
	@touch $@

venv: deps $(VENV)/.installed

guest: venv
	@$(WINARM) testbed build --cache $(CACHE) >/dev/null
	@$(WINARM) testbed build --plain --cache $(CACHE) >/dev/null
	@$(WINARM) testbed drivers --cache $(CACHE) >/dev/null

# The main job on the embedded default: the Windows-shaped test ISO and placeholder virtio drivers, booted
# through the whole pipeline under TCG (answer medium, windowsPE, specialize, oobe), stopped once ready.
demo: guest
	@rm -rf $(CACHE)/demo
	$(WINARM) up --name demo --storage $(CACHE)/demo \
	    --iso "$$($(WINARM) testbed build --cache $(CACHE) 2>/dev/null)" \
	    --drivers "$$($(WINARM) testbed drivers --cache $(CACHE))" \
	    --ram 1G --cpus 2 --disk-size 2G --no-secure-boot --stop-at desktop-ready --timeout 30
	$(WINARM) phases --name demo --storage $(CACHE)/demo

# The quick tier: every test that needs no QEMU, smbd or podman (tests/unit), plus the linters. Under a minute.
check: guest
	$(VENV)/bin/python -m pytest -q tests/unit
	$(VENV)/bin/ruff check winarm winarm_testbed entrypoint.py tests bench
	$(VENV)/bin/mypy

# Everything: the quick tier and the system tier (tests/system: real QEMU guests, smbd, podman), and the linters.
test: guest
	$(VENV)/bin/python -m pytest -q
	$(VENV)/bin/ruff check winarm winarm_testbed entrypoint.py tests bench
	$(VENV)/bin/mypy

lint: venv
	$(VENV)/bin/ruff check winarm winarm_testbed entrypoint.py tests bench
	$(VENV)/bin/mypy

bench: guest
	$(VENV)/bin/python bench/spine_bench.py

# The container image, built with podman from this tree (offline: debootstrap base, local wheels).
image: venv
	@scripts/container-image

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Two set-up commands on a fresh machine: `make demo` and `make test` (both create .venv first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# dg (dagster-dg-cli, dev extra) with the project's venv named active, so it runs the project's Python
# without warning that another one is active.
DG     := VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg

.PHONY: install demo test test-slow test-clock test-postgres test-helm-chart postgresql faketime chromium lint bench dev image test-container podman clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m usersnap_channels.themes.install
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m usersnap_channels.demo

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(DG) check defs
	$(BIN)/pytest -q -m "not slow" -n 2 --dist loadfile

# The suites that assert dev-server content, with the real clock shifted for every process alike
# (libfaketime): main must be green at any hour of any day.
CLOCK_OFFSETS ?= +5h -11h +17h +31h
CLOCK_SUITES  ?= usersnap_channels_tests/reliability/test_bad_input.py usersnap_channels_tests/usersnap/test_client.py \
	usersnap_channels_tests/defs/test_assets.py usersnap_channels_tests/defs/test_checks.py \
	usersnap_channels_tests/cli/test_lifecycle.py usersnap_channels_tests/devserver/test_devserver.py \
	usersnap_channels_tests/reliability/test_spans.py
test-clock: $(STAMP) faketime
	@for offset in $(CLOCK_OFFSETS); do \
		echo "== clock shifted by $$offset: $$(faketime -f "$$offset" date -u)"; \
		faketime -f "$$offset" $(BIN)/pytest -q -p no:cacheprovider -m "not slow" $(CLOCK_SUITES) || exit 1; \
	done

# Debian's libfaketime, installed when missing (CI runs as root; elsewhere sudo is tried).
faketime:
	@command -v faketime >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq faketime >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq faketime; }; }

# Debian's headless Chromium for the report's browser tests and benchmark (Playwright drives it; it never
# downloads a browser of its own), installed when missing like faketime.
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }; }

# The Postgres instance profile (deploy/postgres/dagster.yaml) end to end: a throwaway local Postgres (Debian's
# initdb/pg_ctl, an unprivileged user, 127.0.0.1 only, a temp folder, a random password kept in memory and the
# environment) for the `postgres`-marked tests, removed afterwards.
test-postgres: $(STAMP) postgresql
	$(BIN)/python -m usersnap_channels_tests.postgres.server -- \
		$(BIN)/pytest -q -p no:cacheprovider -m postgres usersnap_channels_tests/postgres

# The Helm values against Dagster's chart itself (its values.schema.json, then `helm lint`): needs helm and
# the chart repository on the network, so not in CI (no network there but the package registries).
HELM_CHART_DIR := .helm-chart
test-helm-chart: $(STAMP)
	@command -v helm >/dev/null || { echo "test-helm-chart needs helm: https://helm.sh/docs/intro/install/" >&2; exit 2; }
	rm -rf $(HELM_CHART_DIR)
	helm pull dagster --repo https://dagster-io.github.io/helm --version 1.13.27 --untar --untardir $(HELM_CHART_DIR)
	$(BIN)/python -m usersnap_channels_tests.deploy.helm_chart $(HELM_CHART_DIR)/dagster
	DAGSTER_HELM_CHART=$(HELM_CHART_DIR)/dagster $(BIN)/pytest -q -p no:cacheprovider -m helm_chart \
		usersnap_channels_tests/deploy/test_helm_values.py
	helm lint $(HELM_CHART_DIR)/dagster -f deploy/helm/values.yaml

# Debian's PostgreSQL server, installed when missing like faketime.
postgresql:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq postgresql >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql; }; }

test-slow: $(STAMP)
	$(BIN)/pytest -q -m "slow and not container"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) chromium
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The Dagster UI over the project's local instance (.dagster_home, shared with the CLI so their runs share
# the `duckdb` pool), with the daemon for sensors; `make dev PORT=3001`.
PORT ?= 3000
# the run environment of defs/instance_env.py (event batching, ...) for the UI, the daemon and their runs
RUN_ENV := $(BIN)/python -m usersnap_channels.defs.instance_env
dev: $(STAMP)
	mkdir -p .dagster_home && cp dagster.yaml .dagster_home/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.dagster_home VIRTUAL_ENV=$(CURDIR)/$(VENV) $(RUN_ENV) $(BIN)/dg dev -p $(PORT)

# The code location's image (Containerfile). `make image` pulls python:3.11-slim (BASE_IMAGE=… for another) and
# pip installs from the package index; `make image OFFLINE=1` needs neither: a Debian base made by debootstrap
# and a wheelhouse made by pip on this machine, cached in ~/.cache/usersnap_channels/container, then
# `podman build --network none`. IMAGE=… names the result.
IMAGE ?= localhost/usersnap-channels:dev
image: $(STAMP) podman
	IMAGE=$(IMAGE) OFFLINE=$(OFFLINE) BASE_IMAGE=$(BASE_IMAGE) deploy/container/build.sh

# Builds the image offline and runs it against the dev server on this machine (slow; not part of `make test`).
test-container: $(STAMP) podman
	$(BIN)/pytest -q -s -m container usersnap_channels_tests/deploy/test_container.py

# Debian's podman (with runc) and debootstrap, installed when missing like faketime.
podman:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq podman runc debootstrap >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq podman runc debootstrap; }; }

clean:
	rm -rf $(VENV) .dagster_home .demo data .pytest_cache .ruff_cache .hypothesis test-artifacts

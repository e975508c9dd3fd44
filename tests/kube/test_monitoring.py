"""The opt-in monitoring and scaling components (components/monitoring: PodMonitor and
PrometheusRule; components/keda: ScaledObject) rendered on the dev and production overlays and
validated against their CRD schemas offline (tests/kube/crds.py, config/kubernetes/crds); every
metric an alert or the scaler names is one a real server exports; every alert has a firing
`promtool test rules` case (tests/kube/alerts-test.yaml, run by `make kube-rules`).
"""

import pathlib
import re
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.kube.crds import CRD_DIR, Validator
from tests.kube.manifests import (
    KUBECTL, KUSTOMIZE_ROOT, by_kind, config_maps, find, pod_template, render_variant, who_reaches)

OPT_IN = ["components/monitoring", "components/keda"]
ALERTS_TEST = pathlib.Path(__file__).with_name("alerts-test.yaml")
#: PromQL words that are not metric names (functions, aggregations, operators)
PROMQL_WORDS = {"sum", "by", "on", "rate", "increase", "and", "or", "unless", "without", "time"}
#: kube-state-metrics' series the txzserver-jobs group reads (the Jobs export nothing themselves)
KUBE_STATE_METRICS = {"kube_cronjob_status_last_successful_time", "kube_job_failed"}


@pytest.fixture(scope="module")
def crds():
    return Validator()


@pytest.fixture(scope="module", params=["dev", "production"])
def with_opt_in(request, tmp_path_factory):
    """An overlay with components/monitoring and components/keda added, as an operator does."""
    objects = render_variant(tmp_path_factory.mktemp(request.param), OPT_IN,
                             resources=(f"overlays/{request.param}",))
    return request.param, objects


def rules(objects, group_name=None):
    """The alerting rules of the PrometheusRule, or of its group ``group_name``."""
    return [rule for group in find(objects, "PrometheusRule", "txzserver")["spec"]["groups"]
            if group_name in (None, group["name"]) for rule in group["rules"]]


def metric_names(expression):
    """The metric names of a PromQL expression: label matchers, grouping clauses, ranges,
    numbers and function names taken out."""
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expression)
    text = re.sub(r"\b(by|on|without)\s*\([^)]*\)", " ", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return words - PROMQL_WORDS


def test_the_crds_are_the_ones_shipped(crds):
    assert set(crds.schemas) >= {("monitoring.coreos.com/v1", "PodMonitor"),
                                 ("monitoring.coreos.com/v1", "PrometheusRule"),
                                 ("keda.sh/v1alpha1", "ScaledObject")}
    assert {path.name for path in CRD_DIR.glob("*.yaml")} >= {
        "monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml",
        "keda.sh_scaledobjects.yaml"}


def test_custom_resources_validate_against_their_crds(with_opt_in, crds):
    _, objects = with_opt_in
    custom = [obj for obj in objects if crds.knows(obj) and obj["apiVersion"].split(".")[0] in (
        "monitoring", "keda")]  # the entry's own: tests/kube/test_entry.py
    assert sorted(obj["kind"] for obj in custom) == ["PodMonitor", "PodMonitor", "PrometheusRule",
                                                     "ScaledObject"]
    for obj in custom:
        assert crds.errors(obj) == [], obj["kind"]


def test_the_validator_refuses_unknown_fields_and_wrong_types(crds):
    scaled = yaml.safe_load((KUSTOMIZE_ROOT / "components/keda/scaledobject.yaml").read_text())
    scaled["spec"]["minReplicas"] = 2  # the HPA's name, not KEDA's
    scaled["spec"]["maxReplicaCount"] = "6"
    scaled["spec"]["triggers"][1]["metadata"]["threshold"] = 6000  # metadata values are strings
    assert crds.errors(scaled) == [
        "spec.maxReplicaCount: '6' is not of type 'integer'",
        "spec.triggers.1.metadata.threshold: 6000 is not of type 'string'",
        "spec: Additional properties are not allowed ('minReplicas' was unexpected)"]
    monitor = next(yaml.safe_load_all((KUSTOMIZE_ROOT / "components/monitoring/podmonitor.yaml").read_text()))
    monitor["spec"]["podMetricsEndpoints"][0]["scheme"] = "gopher"
    assert [e.split(":")[0] for e in crds.errors(monitor)] == ["spec.podMetricsEndpoints.0.scheme"]


def test_built_in_kinds_still_validate_strictly(with_opt_in, crds, tmp_path):
    """The rest of the rendering (the HPA gone in production) passes kubernetes-validate."""
    name, objects = with_opt_in
    rendered = tmp_path / f"{name}.yaml"
    rendered.write_text(yaml.safe_dump_all([obj for obj in objects if not crds.knows(obj)]))
    result = subprocess.run([str(KUBECTL.with_name("kubernetes-validate")), "--strict", "--quiet",
                             str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_keda_replaces_the_hpa(with_opt_in, production):
    name, objects = with_opt_in
    assert by_kind(objects, "HorizontalPodAutoscaler") == {}
    scaled = find(objects, "ScaledObject", "instance")
    assert scaled["metadata"]["namespace"] == "txzserver"
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind(objects, "Deployment")
    if name == "production":  # as the HPA it replaces: bounds, CPU target, slow scale-down
        hpa = find(production, "HorizontalPodAutoscaler", "instance")["spec"]
        assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == \
            (hpa["minReplicas"], hpa["maxReplicas"])
        assert scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
        cpu = hpa["metrics"][0]["resource"]["target"]["averageUtilization"]
        assert {"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(cpu)}} in \
            scaled["spec"]["triggers"]
    subscribers = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    assert len(subscribers) == 1
    assert metric_names(subscribers[0]["metadata"]["query"]) == {"txzserver_websocket_subscribers"}
    assert 'namespace="txzserver"' in subscribers[0]["metadata"]["query"]


def test_the_podmonitor_scrapes_the_instances_metrics_port(with_opt_in):
    _, objects = with_opt_in
    monitor = find(objects, "PodMonitor", "txzserver-instance")
    instance = pod_template(find(objects, "Deployment", "instance"))
    labels = instance["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    endpoint, = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for p in instance["spec"]["containers"][0]["ports"]}
    env = {v["name"]: v.get("value") for v in instance["spec"]["containers"][0]["env"]}
    assert ports[endpoint["port"]] == int(env["METRICS_PORT"])
    assert endpoint["path"] == "/metrics"
    # Prometheus (in a namespace labelled txzserver.io/monitoring) reaches the port, nobody else
    assert who_reaches(objects, "instance", ports[endpoint["port"]]) == {"prometheus"}
    # the alerts select the job the PodMonitor names
    assert {"targetLabel": "job", "replacement": "txzserver-instance"} in endpoint["relabelings"]


def test_the_front_exporter_is_scraped_from_the_monitoring_namespace_only(with_opt_in):
    name, objects = with_opt_in
    monitor = find(objects, "PodMonitor", "txzserver-front")
    endpoint, = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    fronts = by_kind(objects, "Deployment").get("front")
    if fronts is None:  # production's entry is the Gateway: the PodMonitor finds no pod
        assert name == "production"
        return
    template = pod_template(fronts)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    assert ports["metrics"] == 8405
    assert who_reaches(objects, "front", 8405) == {"prometheus"}
    assert "prometheus" not in who_reaches(objects, "front", 8404)


def test_every_alert_names_only_metrics_the_server_exports(with_opt_in, exported):
    _, objects = with_opt_in
    named = set()
    jobs = rules(objects, "txzserver-jobs")  # test_job_alerts_watch_the_overlays_cronjobs
    for rule in (rule for rule in rules(objects) if rule not in jobs):
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        named |= names
    # `up` is Prometheus's own: 1 while the target's scrape succeeds
    assert named - {"up"} <= exported, named - {"up"} - exported
    assert named >= {"txzserver_ready", "txzserver_publisher_queued", "txzserver_events_dropped_total",
                     "txzserver_events_gaps_total", "txzserver_bus_lag_seconds",
                     "txzserver_websocket_subscribers", "txzserver_websocket_subscribers_max",
                     "txzserver_http_requests_total"}


def test_job_alerts_watch_the_overlays_cronjobs(with_opt_in):
    """The backup and pack alerts read kube-state-metrics only, and their name patterns match the
    CronJobs the overlay has (the backup of its storage, the pack) and their Jobs' names."""
    name, objects = with_opt_in
    job_rules = {rule["alert"]: rule["expr"] for rule in rules(objects, "txzserver-jobs")}
    assert set(job_rules) == {"TxzserverBackupTooOld", "TxzserverJobFailed"}
    assert set().union(*map(metric_names, job_rules.values())) == KUBE_STATE_METRICS
    cronjobs = set(by_kind(objects, "CronJob"))
    backup = "backup-zeo" if name == "dev" else "backup-postgresql"
    assert cronjobs == {"pack", backup}
    (backups,) = re.findall(r'cronjob=~"([^"]+)"', job_rules["TxzserverBackupTooOld"])
    (jobs,) = re.findall(r'job_name=~"([^"]+)"', job_rules["TxzserverJobFailed"])
    assert re.fullmatch(backups, backup) and not re.fullmatch(backups, "pack")
    for cronjob in cronjobs:  # a CronJob's Job: its name and the scheduled minute
        assert re.fullmatch(jobs, f"{cronjob}-29412345")
    assert not re.fullmatch(jobs, "create-site")


def test_every_alert_has_a_firing_promtool_case(with_opt_in):
    _, objects = with_opt_in
    cases = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    firing = {check["alertname"] for case in cases for check in case["alert_rule_test"]
              if check["exp_alerts"]}
    silent = {check["alertname"] for case in cases for check in case["alert_rule_test"]
              if not check["exp_alerts"]}
    alerts = {rule["alert"] for rule in rules(objects)}
    assert firing == alerts
    assert len(silent) >= len(alerts) - 2  # most also have a case that must not fire
    for rule in rules(objects):
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description"} <= rule["annotations"].keys()


def test_logs_are_json_on_kubernetes(overlay):
    _, objects = overlay
    zope = [data for name, data in config_maps(objects).items() if name.startswith("txzserver-zope-")]
    assert [data["LOG_FORMAT"] for data in zope] == ["json"]


# What a real server exports: the server, bus (a real broker), hub, health and ZODB readings

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every sample name of a scrape of a ServerMetrics wired as `txzserver serve` wires it
    (app.build_sites and app.build_metrics), with a ZeroMQ bus through a real broker (so the lag
    has a value), a WebSocket endpoint, health checks answered once and a ZODB."""
    import transaction
    import ZODB
    from twisted.internet.testing import MemoryReactorClock
    from twisted.python.threadpool import ThreadPool

    from tests.unit.helpers import ThreadsReactor, make_settings
    from tests.unit.zmqbroker import poll_readable, running_broker, wait_for
    from txzserver.app import build_metrics, build_sites
    from txzserver.bus import Event
    from txzserver.bus.publishers import ZmqBus
    from txzserver.config.datatypes import (
        EventBusSettings, Listener, MetricsSettings, WebSocketSettings)
    from txzserver.metrics import ServerMetrics
    from txzserver.server.health import READY, Health, Shared, Started
    from txzserver.server.shutdown import InFlight
    from txzserver.websocket.fanout import Hub
    from txzserver.zope.metrics import ZodbCollector

    with running_broker(tmp_path_factory.mktemp("broker")) as broker:
        hub = Hub()
        bus = ZmqBus(MemoryReactorClock(), hub, broker.frontend, broker.backend, instance="alpha")
        db = ZODB.DB(None)
        try:
            def pump():
                bus.publish([Event("notification", "/probe", guard={"nobody"})])
                poll_readable([bus.sub], 50)
                bus.doRead()

            wait_for(lambda: bus.lag is not None, pump, what="an own event back from the broker")
            settings = make_settings(
                metrics=MetricsSettings(Listener("metrics", "", 0)), websocket=WebSocketSettings(),
                event_bus=EventBusSettings(publish=broker.frontend, subscribe=broker.backend))
            metrics = ServerMetrics()
            # the publisher pool as serve makes it (not started: its readings need no thread)
            build_sites(ThreadsReactor(), ThreadPool(1, 1, name="monitoring-test"), None, settings,
                        InFlight(), metrics=metrics)
            started = Started()
            started.mark()
            health = Health(startup=[started], live=[], ready=[started])
            health.answer(READY)
            metrics.request_done("http/1.1", 200, 0.01, sent=10)
            connection = db.open(transaction.TransactionManager())
            build_metrics(ThreadsReactor(), metrics, settings, hub, bus,
                          zodb=ZodbCollector(lambda: {"main": db}),
                          shared={"database": Shared(started)}, health=health)
            _, body = metrics.expose()
            connection.close()
        finally:
            bus.close()
            db.close()
    return {sample.name for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}

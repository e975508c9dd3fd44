"""docs/performance.md's "Scale model" is what the committed tests/bench/results/scale.json renders to, and
the model's arithmetic (tests/bench/scale_model.py)."""

import pytest

from tests.bench import scale_model

FOUND = {"connections": 10000, "subscriber_cpu": 20e-6, "nats_subscribers": 100,
         "nats_cpu_per_delivery": 20e-6, "zmq_cpu_per_delivery": 5e-6,
         "bus_cpu_per_event": 50e-6, "event_bytes": 458}


def _point(**fields):
    return dict({"event_bytes": 458, "delivered_share": 1.0, "redelivered": 1, "events_per_s": 1000.0,
                 "deliveries_per_s": 10000.0, "loadavg_1min": 1.0}, **fields)


def results():
    bus = {name: [_point(subscribers=n, server_cpu_per_delivery_s=cpu * n / 100,
                         subscriber_cpu_per_event_s=40e-6, round=r)
                  for r in (1, 2) for n in (10, 100)] for name, cpu in (("zmq", 5e-6), ("nats", 20e-6))}
    bus["nats"].append({"error": "RuntimeError('nats subscribers did not join')", "loadavg_1min": 3.0})
    fanout = [{"connections": n, "cpu_per_event_per_subscriber_s": cpu, "wall_per_event_s": 0.2,
               "loadavg_1min": 1.0, "round": 1} for n, cpu in ((1000, 10e-6), (10000, 18e-6), (10000, 22e-6))]
    prov = {"date": "2026-12-06 16:00 UTC", "commit": "c" * 40, "dirty": [], "loadavg_1min": 1.0,
            "machine": {"cores": 2, "cpu": "x", "ram_bytes": 2**34, "os": "Linux", "python": "3.11"},
            "versions": {}}
    return {"provenance": prov, "rounds": 2, "events": 4000, "hub_events": 30, "hub_users": 20,
            "bus": bus, "fanout": fanout, "total_seconds": 360}


def test_scale_section_matches_the_committed_results():
    current = scale_model.page_parts(scale_model.PAGE.read_text())[1]
    assert current == scale_model.page_section(scale_model.load(scale_model.RESULTS)), (
        "docs/performance.md's Scale model section differs from tests/bench/results/scale.json: "
        "python -m tests.bench.scale_model --docs")


def test_the_model_reads_the_largest_points_and_skips_failed_ones():
    found = scale_model.inputs(results())
    assert found["connections"] == 10000
    assert found["subscriber_cpu"] == pytest.approx(20e-6)  # median of 18 and 22 µs
    assert found["nats_subscribers"] == 100
    assert found["nats_cpu_per_delivery"] == pytest.approx(20e-6)
    assert found["zmq_cpu_per_delivery"] == pytest.approx(5e-6)


def test_a_low_rate_fits_on_the_hundred_instances():
    m = scale_model.model(FOUND, 1)
    assert m["instances"] == 100
    assert m["fanout_cores"] == pytest.approx(0.2)  # 10,000 subscribers x 20 µs
    assert m["capacity"] == 49997  # (1 core - 50 µs of bus) / 20 µs, rounded down
    assert m["deliveries"] == 100
    assert m["nats_nodes"] == 3


def test_a_higher_rate_needs_more_instances_and_their_deliveries():
    m = scale_model.model(FOUND, 10)
    assert m["capacity"] == 4997  # 0.9995 core / 200 µs per subscriber
    assert m["instances"] == 201
    assert m["deliveries"] == 2010
    assert m["nats_cores"] == pytest.approx(2010 * 20e-6)
    assert m["bus_bytes"] == 2010 * 458


def test_nats_nodes_follow_the_deliveries_never_below_three():
    busy = dict(FOUND, subscriber_cpu=0.1e-6, nats_cpu_per_delivery=100e-6)
    m = scale_model.model(busy, 100)  # 10,000 deliveries/s x 100 µs = 1 core
    assert m["instances"] == 100 and m["nats_cores"] == pytest.approx(1.0)
    assert m["nats_nodes"] == 3
    m = scale_model.model(dict(busy, nats_cpu_per_delivery=500e-6), 100)  # 5 cores, 1 per node
    assert m["nats_nodes"] == 5


def test_a_rate_no_instance_can_carry_is_said_so():
    m = scale_model.model(dict(FOUND, bus_cpu_per_event=0.02), 100)  # the bus alone takes 2 cores
    assert m["instances"] is None
    assert "none carries it" in "\n".join(scale_model.table(dict(FOUND, bus_cpu_per_event=0.02)))


def test_the_rendering_names_every_point_and_the_failures():
    text = scale_model.body(results(), 4)
    assert "| nats | 100 | 1000 | 10000 | 20.0 µs | 40.0 µs | 100% | 2 |" in text
    assert "| nats | failed | 1 point(s)" in text
    assert "| 10,000 | 20.0 µs (18.0-22.0) | 200 ms |" in text
    assert "#### The model" in text
    assert "up to 5.0 events/s" in text  # 1 core / (10,000 x 20 µs + 40 µs)


def test_without_results_the_section_says_how_to_make_them(tmp_path):
    assert scale_model.load(tmp_path) is None
    assert "No scale.json" in scale_model.page_section(None)


@pytest.mark.parametrize("values, text", [
    ([17.2e-6], "17.2 µs"), ([17e-6, 19e-6, 18e-6], "18.0 µs (17.0-19.0)"), ([], "-")])
def test_microseconds(values, text):
    assert scale_model.micro(values) == text

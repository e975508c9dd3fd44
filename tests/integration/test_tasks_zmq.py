"""The zmq task queue: two instances on one shared storage (ZEO, then RelStorage on PostgreSQL:
the ``cluster_storage`` fixture of conftest.py), a real broker dealing the tasks one queued; each
runs exactly once, on either instance."""

import time
from collections import Counter

import pytest

from tests.support.cluster import running_cluster
from tests.support.tasks import hits, queue, task_views, wait_hits


def zmq_queue(bus):
    return (f"<task-queue default>\n  backend zmq\n  concurrency 1\n  push {bus['tasks_push']}\n"
            f"  pull {bus['tasks_pull']}\n</task-queue>")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, cluster_storage):
    with running_cluster(tmp_path_factory.mktemp("taskcluster"), cluster_storage, ("alpha", "beta"),
                         broker=True, threads=2, options=lambda cluster, name: dict(
                             extra=zmq_queue(cluster.bus), prepare=task_views(name))) as cluster:
        yield cluster


def test_hundred_tasks_spread_over_two_instances_run_once_each(cluster):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    response = queue(alpha, 100, prefix="Z")
    assert response.status_code == 200, response.text[:300]
    wait_hits([alpha, beta], "Z", 100)
    time.sleep(1)  # any duplicate would show up now
    found = hits([alpha, beta], "Z")
    names = Counter(name for name, *_ in found)
    assert sorted(names) == sorted(f"Z{i}" for i in range(100)) and set(names.values()) == {1}
    per_instance = Counter(instance for _, instance, _, _ in found)
    print(f"tasks per instance: {dict(per_instance)}")
    assert per_instance["alpha"] >= 10 and per_instance["beta"] >= 10, per_instance
    assert {user for _, _, user, _ in found} == {"admin"}


def test_an_aborted_transaction_sends_nothing_to_the_broker(cluster):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    assert queue(alpha, 5, prefix="Y", abort=1).status_code == 500
    assert queue(alpha, 2, prefix="X").status_code == 200
    wait_hits([alpha, beta], "X", 2)
    time.sleep(1)
    assert hits([alpha, beta], "Y") == []

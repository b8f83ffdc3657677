"""Integration tier: one local Ray (2 CPUs, dashboard, metrics endpoint) for the whole tier.

Tests here use Ray Data, Ray Train workers, Tune, Serve and the Job API on that one cluster
(a `ray.init` costs 5-9 s here, and two clusters on one host confuse Tune's cleanup).
"""

from __future__ import annotations

import os
import socket

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """The tier's Ray: {"dashboard_url", "metrics_url"}; RAY_ADDRESS names it so Tune trials and jobs find it."""
    import ray

    from llmft.jobs.cluster import API_SERVER_ENV, init_local_ray

    dash, metrics = free_port(), free_port()
    init_local_ray(num_cpus=2, dashboard_port=dash, log_to_driver=False, _metrics_export_port=metrics)
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    yield {"dashboard_url": f"http://127.0.0.1:{dash}", "metrics_url": f"http://127.0.0.1:{metrics}/metrics"}
    if previous is None:
        os.environ.pop("RAY_ADDRESS", None)
    else:
        os.environ["RAY_ADDRESS"] = previous
    ray.shutdown()
    os.environ.pop(API_SERVER_ENV, None)


@pytest.hookimpl(trylast=True)  # after the item's fixtures are torn down (a Serve app needs its Ray to shut down)
def pytest_runtest_teardown(item, nextitem):
    """Stop the tier's Ray after its last test, so the e2e tier (its own Ray) never runs beside it."""
    if nextitem is None or "tests/integration/" not in str(nextitem.fspath):
        import ray

        if ray.is_initialized():
            ray.shutdown()
        from llmft.jobs.cluster import API_SERVER_ENV

        os.environ.pop(API_SERVER_ENV, None)  # that Ray's dashboard: never the next tier's State API address

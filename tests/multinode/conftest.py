"""Multi-node tier: one `ray.cluster_utils.Cluster` (a head and worker nodes on this machine) per module.

It is a second Ray cluster, so it runs in its own directory after tests/integration (whose
session Ray the integration conftest stops after that tier's last test): `make test` lists
tests/multinode last; `make test-multinode` runs it alone.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/multinode/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def nodes():
    """A head (2 CPUs, the driver's node) and two 1-CPU worker nodes; topped up to two after each loss."""
    from tests.multinode_cluster import LocalCluster

    lc = LocalCluster(head_cpus=2, nodes=2, node_cpus=1)
    try:
        yield lc
    finally:
        lc.close()

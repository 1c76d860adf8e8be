"""CommModel routes the groups of one point-to-point round in one call under a static policy (ECMP): the
same links, keys and latencies as routing each group alone, as its own collective."""

from __future__ import annotations

import numpy as np
import simpy

from dcsim.network import NetworkConfig, NodeGroup, build_datacenter_fabric
from dcsim.network.collectives.runner import plan
from dcsim.network.factory import make_flow_simulator
from dcsim.network.routing import mix64
from dcsim.parallel.comm import CommModel


def _comm(policy: str) -> tuple[CommModel, list[str]]:
    """Four 8-GPU servers with 8 NICs on two leaves under two spines: ECMP has paths to choose from."""
    params = {"leaves": 2, "spines": 2, "hosts_per_leaf": 16}
    network = NetworkConfig("leaf_spine", params, 200)
    fabric = build_datacenter_fabric([NodeGroup("dgx", 4, 8, "a100-sxm-80gb", "nvswitch-a100", 8, 200)], network)
    return CommModel(fabric.graph, policy, 0), fabric.ranks(32)


def _pipeline_groups(ranks: list[str]) -> tuple[tuple[str, ...], ...]:
    """Stage-to-stage sends of a pipeline with tp 8 across the four servers: one (src, dst) group per rank."""
    return tuple((ranks[i], ranks[i + 8]) for i in range(24))


def test_one_route_call_routes_each_group_as_alone() -> None:
    comm, ranks = _comm("ecmp")
    groups = _pipeline_groups(ranks)
    rounds = [plan("send_recv", "direct", len(g), 1e6)[0] for g in groups]
    together = list(CommModel._route_groups(make_flow_simulator(simpy.Environment(), comm.controller), groups, rounds))
    alone = make_flow_simulator(simpy.Environment(), comm.controller)
    assert len(together) == len(groups)
    links_used = set()
    for g, phase, routed in zip(groups, rounds, together, strict=True):
        tag = alone.next_collective_id()
        keys = [mix64(tag, i, j) & 0x7FFFFFFFFFFFFFFF for i, j in phase.pairs]
        expected = alone.route([g[i] for i, _ in phase.pairs], [g[j] for _, j in phase.pairs], keys)
        for field in ("src", "dst", "key", "ptr", "links", "latency_s"):
            np.testing.assert_array_equal(getattr(routed, field), getattr(expected, field), err_msg=field)
        assert routed.version == expected.version
        links_used.update(routed.links.tolist())
    assert len(links_used) > 8  # the groups cross the spines on different paths


def test_a_load_aware_policy_routes_each_group_when_asked() -> None:
    """least_loaded sees the flows started before: a group is routed (its collective id drawn) only when the
    caller takes it, after the previous group's flows started."""
    comm, ranks = _comm("least_loaded")
    groups = _pipeline_groups(ranks)
    rounds = [plan("send_recv", "direct", len(g), 1e6)[0] for g in groups]
    flows = make_flow_simulator(simpy.Environment(), comm.controller)
    routes = CommModel._route_groups(flows, groups, rounds)
    next(routes)
    assert flows.next_collective_id() == 1  # only the first group's id was drawn
    assert len(list(routes)) == len(groups) - 1

"""A user's own datacenter from a file: GraphML (``.graphml``, ``.xml``) or an edge list (anything else).

Edge list: one link per line, ``u v [gbps [latency_us]]`` separated by spaces, tabs or commas; ``#``
starts a comment. GraphML: edge attributes ``gbps`` and ``latency_us`` (both optional), node attribute
``role`` (``host`` or ``switch``). Missing speeds and latencies take ``link_gbps``/``link_latency_us``.
Hosts are the nodes with ``role: host``; without any role, the nodes with a single link; and if there are
none, every node.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from dcsim.network.graph import TopologyError, add_link
from dcsim.network.topologies.common import check_params
from dcsim.network.units import gbps_to_bytes_per_s, us_to_s

PARAMS = ("path",)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TopologyError(f"{where}: {text!r} is not a number") from None
    if not value >= 0:
        raise TopologyError(f"{where}: {text!r} must be >= 0")
    return value


def _read_edge_list(path: Path) -> nx.Graph:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TopologyError(f"file: {path} is not a UTF-8 text file") from None
    raw = nx.Graph()
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].replace(",", " ").split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) < 2 or len(fields) > 4:
            raise TopologyError(f"{where}: expected 'u v [gbps [latency_us]]', got {line.strip()!r}")
        attrs = {}
        if len(fields) > 2:
            attrs["gbps"] = _number(fields[2], where)
        if len(fields) > 3:
            attrs["latency_us"] = _number(fields[3], where)
        raw.add_edge(fields[0], fields[1], **attrs)
    return raw


def _read(path: Path) -> nx.Graph:
    if not path.is_file():
        raise TopologyError(f"file: no such file {str(path)!r}")
    if path.suffix.lower() in (".graphml", ".xml"):
        try:
            return nx.Graph(nx.read_graphml(path))
        except Exception as error:  # networkx raises several parser errors
            raise TopologyError(f"file: {path} is not valid GraphML ({error})") from None
    return _read_edge_list(path)


def build(params: Mapping[str, Any], link_gbps: float, link_latency_us: float, seed: int) -> nx.Graph:
    """The graph in ``params['path']`` with capacities and latencies filled in."""
    check_params("file", params, PARAMS)
    if not isinstance(params.get("path"), str):
        raise TopologyError("file: parameter path (a GraphML or edge-list file) is required")
    raw = _read(Path(params["path"]))
    graph = nx.Graph(topology="file", params=dict(params))
    roles = {n: r for n, r in raw.nodes(data="role") if r is not None}
    for node in raw.nodes:
        role = roles.get(node) or ("host" if not roles and raw.degree(node) == 1 else "switch")
        graph.add_node(str(node), role=role)
    if not any(r == "host" for _, r in graph.nodes(data="role")):
        nx.set_node_attributes(graph, "host", "role")
    for u, v, data in raw.edges(data=True):
        gbps = float(data.get("gbps", link_gbps))
        latency_us = float(data.get("latency_us", link_latency_us))
        add_link(graph, str(u), str(v), gbps_to_bytes_per_s(gbps), us_to_s(latency_us), str(data.get("tier", "link")))
    return graph

"""YAML reading for scenarios: PyYAML's safe loader, with YAML 1.2 floats.

PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: ``1e9`` and ``3.3e9`` are read
as the strings ``"1e9"`` and ``"3.3e9"``. Scenario authors write byte counts, token budgets and rates that
way, so the scenario loader also reads them as floats (the YAML 1.2 core schema's rule); everything else
is as :func:`yaml.safe_load` reads it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class ScenarioLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e9``, ``3.3e9`` and ``.5E-3`` as floats."""


_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$""",
    re.X,
)
ScenarioLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """The YAML document in ``text`` (safe types only), floats read per YAML 1.2 (see the module)."""
    return yaml.load(text, Loader=ScenarioLoader)

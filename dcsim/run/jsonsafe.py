"""JSON-safe summaries: ``inf`` and ``nan`` become ``null``.

JSON has no infinity or NaN (``json.dumps(..., allow_nan=False)`` refuses them, and other readers choke on
the ``Infinity`` that Python would write otherwise). A figure that came out non-finite (a rate over an empty
interval, a cost at a price of infinity) is unknown, which is what ``null`` says.
"""

from __future__ import annotations

import math
from typing import Any


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float, in nested dicts, lists and tuples, replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    return value

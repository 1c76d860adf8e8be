"""An event log that can be exported as a Chrome trace (chrome://tracing, Perfetto).

Recording is off unless asked for (``dcsim run --trace FILE``), so event counts stay proportional to what
the user wants to see. Times are simulated seconds; the Chrome trace format wants microseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class EventLog:
    """Spans (``complete``), instants and counters, kept in memory in the order they were recorded."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.events: list[dict[str, Any]] = []

    def complete(self, name: str, start_s: float, duration_s: float, pid: str, tid: str, **args: Any) -> None:
        """A span of ``duration_s`` seconds starting at ``start_s`` on track (pid, tid)."""
        if self.enabled:
            self.events.append(
                {
                    "name": name,
                    "ph": "X",
                    "ts": start_s * 1e6,
                    "dur": duration_s * 1e6,
                    "pid": pid,
                    "tid": tid,
                    "args": args,
                }
            )

    def instant(self, name: str, time_s: float, pid: str, **args: Any) -> None:
        """A point event at ``time_s``."""
        if self.enabled:
            self.events.append({"name": name, "ph": "i", "s": "p", "ts": time_s * 1e6, "pid": pid, "args": args})

    def counter(self, name: str, time_s: float, pid: str, **values: float) -> None:
        """A counter sample (e.g. queue length) at ``time_s``."""
        if self.enabled:
            self.events.append({"name": name, "ph": "C", "ts": time_s * 1e6, "pid": pid, "args": values})

    def to_chrome_trace(self) -> dict[str, Any]:
        """The log in Chrome trace-event JSON form."""
        return {"traceEvents": self.events, "displayTimeUnit": "ms", "otherData": {"time_unit": "simulated"}}

    def write_chrome_trace(self, path: str | Path) -> Path:
        """Write the Chrome trace JSON to ``path`` and return it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_chrome_trace()), encoding="utf-8")
        return target

"""LLM-serving length traces shipped with dcsim, named: ``traffic: {trace: splitwise_conv}``.

A name resolves to a CSV file in the repository's ``scenarios/traces/`` (its ``README.md`` gives each file's
provenance). Both files are the Azure LLM inference traces of 2023 (AzurePublicDataset,
``AzureLLMInferenceTrace_conv`` and ``AzureLLMInferenceTrace_code``; Patel et al., "Splitwise: Efficient
Generative LLM Inference Using Phase Splitting", ISCA 2024), as processed and shipped in microsoft/vidur
(``data/processed_traces/``, commit 7d47513, MIT licence), unchanged: columns ``arrived_at`` (s),
``num_prefill_tokens``, ``num_decode_tokens`` (read as dcsim's own names,
:data:`dcsim.serving.traffic.TRACE_COLUMN_ALIASES`).
"""

from __future__ import annotations

from pathlib import Path

#: Where the shipped traces live: ``scenarios/traces/`` of the source tree this package is part of.
TRACES_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "traces"

#: Shipped trace name -> (file in :data:`TRACES_DIR`, what it is).
NAMED_TRACES: dict[str, tuple[str, str]] = {
    "splitwise_conv": (
        "splitwise_conv.csv",
        "Azure LLM inference trace 2023, conversation: 19,366 chat requests over 58 minutes",
    ),
    "splitwise_code": (
        "splitwise_code.csv",
        "Azure LLM inference trace 2023, code: 8,819 coding-assistant requests",
    ),
}


def is_trace_name(value: str) -> bool:
    """True if ``value`` is meant as a shipped trace's name rather than a file path: no folder separator and
    no file suffix (``splitwise_conv``, not ``traces/splitwise_conv.csv``)."""
    return "/" not in value and "\\" not in value and not Path(value).suffix


def check_trace_name(name: str) -> None:
    """ValueError naming the available traces unless ``name`` is one of :data:`NAMED_TRACES`."""
    if name not in NAMED_TRACES:
        raise ValueError(
            f"unknown trace {name!r}: give a shipped trace ({', '.join(sorted(NAMED_TRACES))}) "
            "or a CSV file path (e.g. traces/mine.csv)"
        )


def named_trace_path(name: str) -> Path:
    """The shipped file of trace ``name`` (ValueError naming the available ones if it is not one)."""
    check_trace_name(name)
    return TRACES_DIR / NAMED_TRACES[name][0]

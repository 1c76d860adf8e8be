"""The scheduler's plugin families use the project's one registry (:mod:`dcsim.registry`)."""

from __future__ import annotations

from dcsim.registry import Registry

__all__ = ["Registry"]

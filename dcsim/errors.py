"""Errors a user can cause, reported as one line per problem naming the field path (exit status 2)."""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from typing import Any

#: Longest message (characters) a problem prints; longer ones are cut with an ellipsis.
MAX_MESSAGE_CHARS = 400
#: Longest quoted value (characters) a message shows: see :func:`short_repr`.
MAX_VALUE_CHARS = 60

_LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")


def _value_repr() -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxlevel = 2
    shown.maxdict = shown.maxlist = shown.maxtuple = shown.maxset = 4
    shown.maxstring = shown.maxother = MAX_VALUE_CHARS
    shown.maxlong = 24
    return shown


_REPR = _value_repr()


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to about :data:`MAX_VALUE_CHARS` characters without building the full text: a
    message quotes what the user wrote, never a huge expanded value (a YAML alias bomb, a 300-digit number)."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_VALUE_CHARS + 10 else text[:MAX_VALUE_CHARS] + "..."


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with its line breaks replaced by spaces and cut to ``limit`` characters."""
    flat = _LINE_BREAKS.sub(" ", text)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One problem with user input: ``path`` names the field (``workloads[1].parallelism.tp``).

    Both parts are kept on one line (line breaks become spaces) and of bounded length, so that every
    problem prints as exactly one line however hostile the input.
    """

    path: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", one_line(self.path))
        object.__setattr__(self, "message", one_line(self.message))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class UserInputError(Exception):
    """Invalid user input (scenario file, trace, command-line value); carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, path: str, message: str) -> UserInputError:
        """An error with exactly one problem."""
        return cls([Problem(path, message)])

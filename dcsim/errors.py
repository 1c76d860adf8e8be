"""Errors a user can cause, reported as one line per problem naming the field path (exit status 2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem with user input: ``path`` names the field (``workloads[1].parallelism.tp``)."""

    path: str
    message: str

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

"""Domain exceptions; the web layer maps them to HTTP in one place."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error a use case raises on purpose."""

    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    status = 404


class PermissionDenied(DomainError):
    status = 403


class Conflict(DomainError):
    """Someone else changed the record since it was read (optimistic locking)."""

    status = 409


class RateLimited(DomainError):
    status = 429


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: which field, and a Japanese message."""

    field: str
    message: str


class ValidationFailed(DomainError):
    status = 422

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems

    def by_field(self) -> dict[str, list[str]]:
        """Group messages by field name, for forms."""
        grouped: dict[str, list[str]] = {}
        for problem in self.problems:
            grouped.setdefault(problem.field, []).append(problem.message)
        return grouped

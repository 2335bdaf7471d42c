"""The two errors of riskq's own making that the commands turn into exit codes
(``riskq.cli.errors``): refused input (2) and a run that started and failed (1)."""

from __future__ import annotations


class UsageError(ValueError):
    """Input that riskq refuses before it writes anything (exit code 2)."""


class RunFailed(RuntimeError):
    """A run that started and failed; its run directory says so (exit code 1)."""

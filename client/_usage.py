"""UsageError: bad command-line input (exit 2), shared by the CLI's modules."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad command-line input (exit 2)."""

"""Errors of the capacity core; the CLI turns them into one line and exit 1."""

from __future__ import annotations


class CapacityInputError(ValueError):
    """The inputs cannot give an honest estimate (no history, unknown class, a missing rating); the message says why."""

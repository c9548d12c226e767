"""Batch reader for sma bodies (none yet: every body goes through the one-body parser)."""

from __future__ import annotations

READERS: dict = {}

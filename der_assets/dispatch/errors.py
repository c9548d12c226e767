"""Typed errors for the dispatch file contract.

A bad input file must stop a dispatch run with one line an operator can act on, naming the
file and, where there is one, the line and field. An instruction the fleet cannot fully meet is
*not* an error: it gets the best plan and a reported shortfall.
"""

from __future__ import annotations


class DispatchInputError(ValueError):
    """An input file breaks the dispatch contract (docs/dispatch.md).

    ``file``, ``line`` (1-based, header is line 1) and ``field`` say where, so callers can
    point at the cell; ``str(err)`` is a single line.
    """

    def __init__(self, file: str, message: str, *, line: int | None = None, field: str | None = None):
        self.file = file
        self.line = line
        self.field = field
        self.detail = message
        where = file
        if line is not None:
            where += f" line {line}"
        if field is not None:
            where += f" field {field}"
        super().__init__(f"{where}: {message}".replace("\n", " "))

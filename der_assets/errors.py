"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or setup; its message is the whole story."""

    exit_code = 2


class ValidationFailed(UserError):
    """Input was checked and rejected; `problems` holds one line per problem."""

    exit_code = 1

    def __init__(self, summary: str, problems: list[str]):
        super().__init__(summary)
        self.problems = problems

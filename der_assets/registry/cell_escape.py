"""Text cells that a spreadsheet would run as a formula are written with a leading single quote.

Why: a registry export is opened in Excel or LibreOffice, and a cell that begins with `=`, `+`,
`-` or `@` (or a tab or carriage return) is taken as a formula there: a subscriber name such as
`=HYPERLINK(...)` would run on the operator's machine. OWASP's CSV injection guidance is to
prefix such cells with a single quote (https://owasp.org/www-community/attacks/CSV_Injection).

Only text is escaped; a number column's `-75.1` is written as it is. The importer removes
exactly the quote the exporter added, so a round trip leaves every stored value as it was: a
value that itself begins with a quote before one of those characters (or before another
quote) gets one more quote on export, and loses one on import. Anything else is read as typed.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def escape_cell(text: str) -> str:
    """The text as written to a CSV or XLSX cell."""
    if text.startswith(FORMULA_STARTS) or text != unescape_cell(text):
        return QUOTE + text
    return text


def unescape_cell(text: str) -> str:
    """The stored value of a text cell as read from a file: the inverse of escape_cell."""
    if len(text) > 1 and text[0] == QUOTE and (text[1] == QUOTE or text[1] in FORMULA_STARTS):
        return text[1:]
    return text


def escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text value escaped (numbers, booleans and empty cells as they are)."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object or isinstance(out[name].dtype, pd.StringDtype):
            out[name] = out[name].map(lambda v: escape_cell(v) if isinstance(v, str) else v)
    return out

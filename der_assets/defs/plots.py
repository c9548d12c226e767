"""One way to put a PNG into Dagster metadata: an inline Markdown image and a kept file.

The Dagster UI (1.13) renders a `MetadataValue.md` image whose source is a `data:image/png;base64,...` URI (its
Markdown sanitizer allows the `data` protocol for `src`), so the picture shows on the materialization page with no
file server. The same PNG is kept under the data home, `plots/<asset>/<partition>.png`, written atomically, and linked
with `MetadataValue.path` so an operator can open or share the file.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import dagster as dg

from der_assets import config
from der_assets.atomic import write_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def plot_dir() -> Path:
    """Where kept plots live: <data home>/plots."""
    return config.data_home() / "plots"


def _png_bytes(png: bytes | str | Path) -> bytes:
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG image (missing PNG signature)")
    return data


def png_markdown(png: bytes | str | Path, alt: str) -> dg.MetadataValue:
    """A PNG (bytes or a file) as a Markdown image the Dagster UI shows inline."""
    data = base64.b64encode(_png_bytes(png)).decode("ascii")
    alt = alt.replace("[", "(").replace("]", ")")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def _file_part(text: str) -> str:
    """A partition key or asset name as one safe file-name part (multi-partition keys hold '|')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def keep_png(png: bytes | str | Path, asset: str, partition: str | None = None) -> Path:
    """Write the PNG to <data home>/plots/<asset>/<partition>.png (atomically; `latest` when unpartitioned)."""
    data = _png_bytes(png)
    path = plot_dir() / _file_part(asset) / f"{_file_part(partition) if partition else 'latest'}.png"
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def plot_metadata(name: str, png: bytes | str | Path, *, asset: str, partition: str | None = None,
                  alt: str | None = None) -> dict[str, dg.MetadataValue]:
    """Metadata entries for one plot: `name` (the inline image) and `name_png` (a link to the kept file).

    Merge the result into a materialization's metadata: `metadata={..., **plot_metadata("fleet_day", png, ...)}`.
    """
    data = _png_bytes(png)
    path = keep_png(data, asset, partition)
    return {name: png_markdown(data, alt or name.replace("_", " ")), f"{name}_png": dg.MetadataValue.path(str(path))}


def context_partition(context) -> str | None:
    """The run's partition key as text, or None for an unpartitioned asset."""
    return str(context.partition_key) if context.has_partition_key else None

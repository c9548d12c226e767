"""Small registry files for tests, written from the demo fleet or by hand."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import to_text_frame, write_registry_file


def write_demo(path: Path, n_sites: int = 20, seed: int = 7) -> Path:
    return write_registry_file(demo_fleet(n_sites, seed), path)


def demo_text(n_sites: int = 3, seed: int = 7) -> pd.DataFrame:
    """The demo fleet as text cells, ready to be edited into a bad file."""
    return to_text_frame(demo_fleet(n_sites, seed))


def write_text(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, lineterminator="\n")
    return path

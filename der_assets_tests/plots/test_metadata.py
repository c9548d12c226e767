"""defs/plots.py: one PNG becomes an inline Markdown image and a kept, linked file under the data home."""

from __future__ import annotations

import base64
import re

import dagster as dg
import pytest

from der_assets.defs.plots import keep_png, plot_metadata, png_markdown
from der_assets.figures import figure_png, pyplot
from der_assets_tests.plots.png import png_size


@pytest.fixture
def png() -> bytes:
    fig, ax = pyplot().subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    return figure_png(fig)


def test_markdown_image_and_kept_file(png, isolated_home):
    entries = plot_metadata("fleet_day", png, asset="interval_telemetry", partition="2026-06-01",
                            alt="fleet [day]")
    assert set(entries) == {"fleet_day", "fleet_day_png"}
    md = entries["fleet_day"]
    assert isinstance(md, dg.MarkdownMetadataValue)
    alt, data = re.fullmatch(r"!\[([^\]]*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md.md_str).groups()
    assert alt == "fleet (day)" and base64.b64decode(data) == png
    path = entries["fleet_day_png"]
    assert isinstance(path, dg.PathMetadataValue)
    assert path.path == str(isolated_home / "plots" / "interval_telemetry" / "2026-06-01.png")
    assert (isolated_home / "plots" / "interval_telemetry" / "2026-06-01.png").read_bytes() == png
    assert png_size(png) == (300, 200)
    # no temporary file is left next to it
    assert [p.name for p in (isolated_home / "plots" / "interval_telemetry").iterdir()] == ["2026-06-01.png"]


def test_partition_keys_become_file_names(png, isolated_home):
    assert keep_png(png, "capacity_estimate", "PJM|2026/2027").name == "PJM_2026_2027.png"
    assert keep_png(png, "asset_registry").name == "latest.png"
    again = keep_png(png, "asset_registry")  # a re-materialization replaces the file
    assert again.read_bytes() == png


def test_a_file_or_bytes(png, tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(png)
    assert png_markdown(f, "x").md_str == png_markdown(png, "x").md_str


def test_not_a_png_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a PNG"):
        png_markdown(b"GIF89a....", "x")

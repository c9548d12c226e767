"""The plots render in the Dagster UI: a real browser opens each asset's latest materialization."""

from __future__ import annotations

import base64
import re

import pytest

from der_assets_tests.browser.conftest import DAY
from der_assets_tests.browser.harness import image_loaded, open_page, screenshot, show_markdown
from der_assets_tests.plots.png import png_size

pytestmark = pytest.mark.slow

PLOTS = [  # asset, events page query, metadata entry, the image's alt text, PNG size
    ("interval_telemetry", f"&partition={DAY}", "fleet_day", f"fleet day {DAY}", (1100, 600)),
    ("asset_registry", "", "fleet_map", "fleet map by ISO zone", (900, 600)),
]


def test_plots_render(fleet_day_ui, driver):
    url, metadata = fleet_day_ui
    for asset, query, entry, alt, size in PLOTS:
        md = metadata[asset][entry].value
        data_uri = re.search(r"\((data:image/png;base64,[A-Za-z0-9+/=]+)\)", md).group(1)
        assert png_size(base64.b64decode(data_uri.split(",", 1)[1])) == size
        # the asset's events page opens on its latest materialization (of the partition)
        open_page(driver, f"{url}/assets/{asset}?view=events{query}", "table", timeout_s=45)
        dialog = show_markdown(driver, entry, timeout_s=45)
        img = dialog.find_element("css selector", f'img[alt="{alt}"]')
        loaded = image_loaded(driver, img)
        shot = screenshot(driver, f"{asset}_{entry}")
        assert loaded == size, f"{asset} {entry}: the image is broken or not the materialized PNG ({loaded})"
        assert img.get_attribute("src") == data_uri
        assert shot.stat().st_size > 10_000

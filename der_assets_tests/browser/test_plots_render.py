"""The plots render in the Dagster UI: a real browser opens interval_telemetry's latest materialization."""

from __future__ import annotations

import base64
import re

import pytest

from der_assets_tests.browser.conftest import DAY
from der_assets_tests.browser.harness import image_loaded, open_page, screenshot, show_markdown
from der_assets_tests.plots.png import png_size

pytestmark = pytest.mark.slow


def test_fleet_day_plot_renders(telemetry_day_ui, driver):
    url, metadata = telemetry_day_ui
    data_uri = re.search(r"\((data:image/png;base64,[A-Za-z0-9+/=]+)\)", metadata["fleet_day"].value).group(1)
    expected = png_size(base64.b64decode(data_uri.split(",", 1)[1]))
    # the asset's events page opens on the latest materialization of the partition
    open_page(driver, f"{url}/assets/interval_telemetry?view=events&partition={DAY}", "table", timeout_s=45)
    dialog = show_markdown(driver, "fleet_day", timeout_s=45)
    img = dialog.find_element("css selector", f'img[alt="fleet day {DAY}"]')
    size = image_loaded(driver, img)
    shot = screenshot(driver, "interval_telemetry_fleet_day")
    assert size == expected == (1100, 600), "the image is broken or not the materialized PNG"
    assert img.get_attribute("src") == data_uri
    assert shot.stat().st_size > 10_000

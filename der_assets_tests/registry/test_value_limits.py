"""A value its warehouse column cannot hold is refused by the import itself, by row and column,
with the same one line on SQLite (which would store it) and PostgreSQL (which raised mid-write)."""

from __future__ import annotations

import pytest

from der_assets.cli import main

from .helpers import demo_text, write_text


def _der(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_too_long_and_too_large_values_are_one_line_each_on_both_databases(capsys, tmp_path, warehouse_url):
    text = demo_text(2)
    text.loc[0, "subscriber_name"] = "N" * 257  # registry_subscribers.subscriber_name is varchar(256)
    text.loc[1, "subscriber_name"] = "N" * 257  # same subscriber: rows must agree
    text.loc[2, "serial"] = "S" * 129  # varchar(128)
    text.loc[[2, 3], "max_events_per_month"] = str(2**31)  # one site's rows; a 32-bit integer on PostgreSQL
    path = write_text(text, tmp_path / "long.csv")
    code, _, err = _der(capsys, "registry", "import", "--url", warehouse_url, str(path))
    assert code == 1 and "Traceback" not in err
    too_large = "2147483648 is outside the range the registry keeps (-2147483648 to 2147483647)"
    assert err.splitlines() == [
        f"{path}: row 2, column subscriber_name: is 257 characters long; the registry keeps at most 256",
        f"{path}: row 3, column subscriber_name: is 257 characters long; the registry keeps at most 256",
        f"{path}: row 4, column max_events_per_month: {too_large}",
        f"{path}: row 4, column serial: is 129 characters long; the registry keeps at most 128",
        f"{path}: row 5, column max_events_per_month: {too_large}",
        f"der: {path}: 5 problem(s); nothing written",
    ]
    code, out, _ = _der(capsys, "registry", "export", "--url", warehouse_url)
    assert code == 0 and out.count("\n") == 1  # header only: nothing was written


def test_values_at_the_limit_are_stored_whole(capsys, tmp_path, warehouse_url):
    text = demo_text(2)
    site = text.loc[0, "site_id"]
    text.loc[text["site_id"] == site, "address"] = "é" * 512  # characters, not bytes: 1,024 bytes of UTF-8
    text.loc[0, "serial"] = "S" * 128
    text.loc[text["site_id"] == site, "max_events_per_month"] = str(2**31 - 1)
    path = write_text(text, tmp_path / "edge.csv")
    code, out, err = _der(capsys, "registry", "import", "--url", warehouse_url, str(path))
    assert code == 0, err
    from der_assets.registry.store import current_registry
    from der_assets.warehouse import connect_warehouse

    registry = current_registry(connect_warehouse(warehouse_url)).set_index("device_id")
    row = registry.loc[text.loc[0, "device_id"]]
    assert (row["address"], row["serial"], row["max_events_per_month"]) == ("é" * 512, "S" * 128, 2**31 - 1)

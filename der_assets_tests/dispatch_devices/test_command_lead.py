"""How far ahead of each dispatch interval its setpoints go out: DER_DISPATCH_LEAD_S."""

from __future__ import annotations

import pytest


def test_command_lead_comes_from_the_environment(monkeypatch):
    from der_assets import config
    from der_assets.errors import UserError

    monkeypatch.delenv("DER_DISPATCH_LEAD_S", raising=False)
    assert config.command_lead_s() == 60.0
    monkeypatch.setenv("DER_DISPATCH_LEAD_S", "45")
    assert config.command_lead_s() == 45.0
    monkeypatch.setenv("DER_DISPATCH_LEAD_S", "soon")
    with pytest.raises(UserError, match="DER_DISPATCH_LEAD_S='soon' is not a number of seconds"):
        config.command_lead_s()
    monkeypatch.setenv("DER_DISPATCH_LEAD_S", "900")
    with pytest.raises(UserError, match="between 0 and 600"):
        config.command_lead_s()

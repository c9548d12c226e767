"""`der normalize --help` names every source parse_payload reads (the text is static, so the CLI
starts without importing the parsers)."""

from click.testing import CliRunner

from der_assets.cli import cli
from der_assets.telemetry.parsers import VENDORS


def test_help_lists_every_source():
    out = CliRunner().invoke(cli, ["normalize", "--help"]).output
    help_text = " ".join(out.split())
    assert [s for s in VENDORS if s not in help_text] == []

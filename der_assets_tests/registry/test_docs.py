"""The README's column reference is the one the code enforces."""

from pathlib import Path

from der_assets.registry.columns import render_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_column_table_is_current():
    text = README.read_text()
    block = text.split("<!-- registry-columns:start -->\n", 1)[1].split("<!-- registry-columns:end -->", 1)[0]
    assert block == render_markdown(), "paste `der registry columns` into the README"

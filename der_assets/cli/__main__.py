"""`python -m der_assets.cli`."""

from der_assets.cli import main

main()

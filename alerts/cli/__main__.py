"""`python -m alerts.cli` runs the same command line as the `alerts` script."""

from alerts.cli import main

main()

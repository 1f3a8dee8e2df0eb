"""`python -m pmo …` is the same as the `pmo` command."""

from pmo.cli import main

main()

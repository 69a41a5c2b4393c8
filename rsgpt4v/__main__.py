"""`python -m rsgpt4v` runs the command-line interface."""

from rsgpt4v.cli import main

main()

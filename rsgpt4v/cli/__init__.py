"""The `rsgpt4v` command line (`rsgpt4v.cli:main`, the console entry point)."""

from rsgpt4v.cli.app import app, main

__all__ = ["app", "main"]

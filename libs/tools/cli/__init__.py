"""The ``signgate`` command line (typer + rich); ``app`` is its entry point."""

from libs.tools.cli.app import app

__all__ = ["app"]

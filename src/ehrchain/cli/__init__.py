"""The ``ehrchain`` command line (typer + rich). Entry point: ``ehrchain.cli.main:main``."""

from ehrchain.cli.main import app, main

__all__ = ["app", "main"]

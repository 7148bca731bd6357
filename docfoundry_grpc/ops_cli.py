"""Operator commands of `docfoundry`: migrate and eval."""

from __future__ import annotations

import argparse


def add_ops_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers the operator subcommands (filled in by the migration and eval modules)."""

"""TRANSITIONAL: moves here from pythia.data.cli."""

from pythia.data.cli import register

__all__ = ["register"]

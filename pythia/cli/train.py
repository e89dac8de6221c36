"""TRANSITIONAL: moves here from pythia.train.cli."""

from pythia.train.cli import register

__all__ = ["register"]

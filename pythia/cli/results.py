"""TRANSITIONAL: moves here from pythia.results."""

from pythia.results import register

__all__ = ["register"]

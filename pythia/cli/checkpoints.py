"""TRANSITIONAL: moves here from pythia.runs."""

from pythia.runs import register

__all__ = ["register"]

"""TRANSITIONAL: moves here from pythia.analysis.suite."""

from pythia.analysis.suite import register

__all__ = ["register"]

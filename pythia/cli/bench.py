"""TRANSITIONAL: moves here from pythia.bench."""

from pythia.bench import register

__all__ = ["register"]

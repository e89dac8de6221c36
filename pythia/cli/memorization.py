"""TRANSITIONAL: moves here from pythia.evaluate.memorization."""

from pythia.evaluate.memorization import register

__all__ = ["register"]

"""TRANSITIONAL: moves here from pythia.evaluate.benchmarks."""

from pythia.evaluate.benchmarks import register

__all__ = ["register"]

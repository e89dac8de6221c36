"""TRANSITIONAL: moves here from pythia.evaluate.trajectories."""

from pythia.evaluate.trajectories import register

__all__ = ["register"]

"""TRANSITIONAL: moves here from pythia.workflow."""

from pythia.workflow import register

__all__ = ["register"]

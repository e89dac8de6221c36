"""TRANSITIONAL: moves here from pythia.intervene."""

from pythia.intervene import register

__all__ = ["register"]

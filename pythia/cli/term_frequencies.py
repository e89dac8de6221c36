"""TRANSITIONAL: moves here from pythia.analysis.term_frequencies."""

from pythia.analysis.term_frequencies import register

__all__ = ["register"]

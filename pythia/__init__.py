"""pythia: a reproducible compendium of the Pythia suite and of training-trajectory analyses."""

__version__ = "0.1.0"

"""Published Pythia numbers converted into the project's compact tables (see each module)."""

"""Analyses, one module per paper section (same stem as its notebook and rule file)."""

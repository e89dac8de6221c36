"""Data: sources, tokenization, GPT-NeoX indexed datasets, training order, batches, deduplication."""

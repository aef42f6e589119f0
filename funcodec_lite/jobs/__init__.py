"""Dataset-level work: tokenizing and evaluating whole data directories."""

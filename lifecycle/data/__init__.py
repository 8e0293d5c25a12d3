"""Training data: the sources, production rows with their labels, synthetic data, the split."""

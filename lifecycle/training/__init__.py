"""The hyperparameter search, its spaces and cluster checks, and the refit candidate."""

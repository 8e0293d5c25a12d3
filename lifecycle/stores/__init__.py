"""Where the loop keeps things: the MLflow registry, the prediction store and its journal."""

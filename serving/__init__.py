"""The prediction API: FastAPI app, routes, model holder + watcher, prediction logger."""

"""The model format (feature spec + booster), its MLflow pyfunc, metrics, and batch scoring."""

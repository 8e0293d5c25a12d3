"""Decisions about model versions: the offline quality gate and live experiments."""

"""Decisions the loop takes by itself: the quality gate, the live experiment and the rollback."""

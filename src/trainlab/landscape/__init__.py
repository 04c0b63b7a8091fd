"""Optimizer landscapes: the lecture's 2-parameter surfaces, trajectories, tables and pictures."""

"""Sweeps: many network runs advanced together, with one batched model call per tick."""

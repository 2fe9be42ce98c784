"""Snapshots and exports: pinned, filtered views of the store written as training datasets."""

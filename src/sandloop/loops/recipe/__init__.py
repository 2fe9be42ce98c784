"""Recipes: versioned prompt templates with context slots, an output schema and a refine loop."""

"""sandloop: loops of AI models as Prefect flows, with an exact record of every step."""

__version__ = "0.1.0"

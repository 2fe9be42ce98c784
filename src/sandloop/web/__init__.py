"""sandloop's HTTP face: a FastAPI app over `sandloop.api`, which holds all the logic."""

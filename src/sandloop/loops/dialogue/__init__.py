"""Socratic dialogues: actors taking turns on a question, ended by a judge or a sentinel."""

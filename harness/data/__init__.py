"""Evaluation data: annotation files and the other loaders, audio decoding, prompts, long audio, the demo data."""

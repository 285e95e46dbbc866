"""Evaluation data: annotation files and the other loaders, audio decoding, prompts, long audio, the demo data."""

# The data formats the loaders read (`--format`; harness/data/loaders): here, in a module that
# imports nothing, so that bench.py's options can list them without loading the loaders.
DATA_FORMATS = ("json", "librispeech", "clotho", "audiocaps", "hf", "mmau", "airbench")

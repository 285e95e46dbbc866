"""Model code the families use: the SALMONN-style composite, audio-only processors."""

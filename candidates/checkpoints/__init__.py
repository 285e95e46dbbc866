"""Checkpoint builders: the tiny random models of the tests and demo, the Whisper CTranslate2 conversion."""

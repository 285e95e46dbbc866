"""Example lalm-bench plugin (see docs/guides/writing-a-candidate.md)."""

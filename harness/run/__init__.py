"""The parent side of a run: options and their checks, planning, the measured child's process, repeats, the record."""

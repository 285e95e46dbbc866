"""Sweeps: the sweep file (spec), its driver (state, resume), and the executors that run cells (local, Ray)."""

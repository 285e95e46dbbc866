"""Where a sweep's cells run: `local` (one after another, in this process's measured children)
or `ray` (one Ray task per cell, on the nodes of a Ray cluster). Both run the same measured child
(harness.run) and leave the same run folders in the results folder."""

from __future__ import annotations

EXECUTORS = ("local", "ray")


def get_executor(name: str, **ray_options):
    if name == "local":
        from harness.sweep.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from harness.sweep.executors.ray import RayExecutor

        return RayExecutor(**ray_options)
    raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")

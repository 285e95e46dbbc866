"""Keeps third-party import chatter out of the terminal: it goes to the run's worker.log.

Importing aac-metrics imports torch, and with torchao installed torch's pytree and torchao log
warnings about optional kernels at import ("Failed to load ..._C_mxfp8...", "<enum ...> is an
Enum subclass ..."). They say nothing about the run, so the parent sends them to the run's log.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

NOISY_LOGGERS = ("torchao", "torch.utils._pytree", "torch._dynamo", "transformers")


@contextlib.contextmanager
def library_logs_to(path: Path) -> Iterator[None]:
    """Within the block, the noisy libraries' log records and Python warnings go to `path`."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    saved = [(lg.propagate, list(lg.handlers)) for lg in loggers]
    for lg in loggers:
        lg.handlers = [handler]
        lg.propagate = False
    try:
        with open(path, "a", encoding="utf-8") as log, warnings.catch_warnings():
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: log.write(
                warnings.formatwarning(message, category, filename, lineno, line)
            )
            yield
    finally:
        for lg, (propagate, handlers) in zip(loggers, saved, strict=True):
            lg.handlers, lg.propagate = handlers, propagate
        handler.close()

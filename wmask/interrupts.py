"""Ctrl-C honoured at any point of a run.

Python turns Ctrl-C into a ``KeyboardInterrupt`` raised wherever the main thread happens to be, and one raised inside
a finaliser (a ``__del__`` or a weak-reference callback, which run when objects are freed, e.g. while a checkpoint
is written) is printed as "Exception ignored" and lost: the run would go on as if nothing had been pressed. Inside
:func:`honoured`, Ctrl-C is also remembered, and :func:`check`, called by the training loops at every step and by
the runner before a result is written, raises the ``KeyboardInterrupt`` that was lost.
"""
from __future__ import annotations

import contextlib
import signal
import threading

_pending = False


def _on_sigint(signum, frame):
    global _pending
    _pending = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def honoured():
    """Remember every Ctrl-C while the block runs (in the main thread, where Python's own handler is installed;
    elsewhere, e.g. under a notebook's kernel, nothing changes)."""
    global _pending
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    _pending = False
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived and its ``KeyboardInterrupt`` was lost."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt

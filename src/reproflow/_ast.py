"""``ast.parse`` for every part of reproflow that reads Python source (the checks, the content
cache key, the report's task source), safe beside other threads.

CPython keeps the AST constructor's recursion depth in state that every thread of the
interpreter shares (gh-106905): two threads in ``ast.parse`` at once can make one of them fail
with ``SystemError: AST constructor recursion depth mismatch``. The other thread need not be
reproflow's: pydantic building a model calls ``inspect.signature`` on a builtin default factory,
which parses its text signature. Seen in a flow whose first task's checks parsed the task's
module while another thread built models. So reproflow's parses take one lock (none of its own
threads parse beside another), and that error, where a thread outside reproflow caused it, is
retried: the depth is set afresh at each call.
"""

from __future__ import annotations

import ast
from typing import Any

from . import _forksafe

_lock = _forksafe.lock()
#: Tries of one parse that CPython's spurious recursion-depth error interrupts.
TRIES = 5


def parse(source: str | bytes, filename: str = "<unknown>", **kwargs: Any) -> ast.Module:
    """``ast.parse(source, filename, **kwargs)``, one at a time in this process, tried again
    (up to :data:`TRIES` times) when another thread's parse made CPython report a recursion-depth
    mismatch. Raises what ``ast.parse`` raises (SyntaxError, ValueError, the last SystemError)."""
    with _lock:
        for _ in range(TRIES - 1):
            try:
                return ast.parse(source, filename, **kwargs)
            except SystemError as exc:
                if "recursion depth mismatch" not in str(exc):
                    raise
        return ast.parse(source, filename, **kwargs)

"""Locks that a forked child gets unlocked.

Only the thread that calls ``fork`` lives on in the child. A lock that another thread of the
parent held at that moment stays held there for ever, and the child's first use of it waits for
ever: a task that starts a ``multiprocessing`` pool (the fork method, Linux's default before
Python 3.14) while sibling tasks record, and whose workers record tasks of their own, would hang.
Every lock reproflow keeps is made here and set back to unlocked in the child with
``_at_fork_reinit``, as ``threading`` and ``logging`` do for their own locks; a lock in place,
so every module and object that holds it sees the same one (``tests/test_forksafe.py`` finds
any lock made otherwise).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

_made: weakref.WeakSet[Any] = weakref.WeakSet()


def lock() -> threading.Lock:
    """A ``threading.Lock``, unlocked again in a forked child."""
    made = threading.Lock()
    _made.add(made)
    return made


def rlock() -> threading.RLock:
    """A ``threading.RLock``, unlocked again in a forked child."""
    made = threading.RLock()
    _made.add(made)
    return made


def condition() -> threading.Condition:
    """A ``threading.Condition``, its lock unlocked and its waiters forgotten in a forked child."""
    made = threading.Condition()
    _made.add(made)
    return made


def _reinit_in_child() -> None:
    for made in list(_made):
        made._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_in_child)


__all__ = ["condition", "lock", "rlock"]

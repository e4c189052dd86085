"""The progress bars drawn while a replay builds its environment and runs its tasks."""

from __future__ import annotations

import io

from rich.console import Console

from reproflow.replay._render import progress_bars


def test_progress_bars_for_environment_and_tasks() -> None:
    """One bar per phase (environment build, task execution, and each probe run), labelled and
    counted as the replay reports them; disabled (--json) yields no callback at all."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    with progress_bars(console) as report:
        assert report is not None
        report("env", "create venv", 0, 3)
        report("env", "install 26 pins", 2, 3)
        report("env", "environment ready", 3, 3)
        report("tasks", "starting the flow", 0, 4)
        report("tasks", "flow finished", 4, 4)
        report("tasks 2", "running tasks", 1, 4)
    text = buf.getvalue()
    assert "environment" in text and "environment ready" in text and "3/3" in text
    assert "tasks" in text and "flow finished" in text and "4/4" in text
    assert "run 2" in text and "1/4" in text
    with progress_bars(console, enabled=False) as report:
        assert report is None

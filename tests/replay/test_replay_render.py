"""The progress bars drawn while a replay builds its environment and runs its tasks, and the
verdict's table and summary."""

from __future__ import annotations

import io

from rich.console import Console

from reproflow.replay._models import ReplayResult
from reproflow.replay._render import progress_bars, render_result, summary_line


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


def _result(*verdicts: str) -> ReplayResult:
    from reproflow.replay._models import ReplayPlan, TaskVerdict
    from reproflow.replay._replay import conclude

    plan = ReplayPlan(run_id="r", flow_name="f", status="COMPLETED", engine="prefect", python_recorded="3.11.7",
                      environment_hash="e")
    result = ReplayResult(run_id="r", replay_run_id="n", verdict="dry-run", plan=plan)
    tasks = [TaskVerdict(task_name=f"t{i}", verdict=v, result_unhashable="flow.Model" if v == "unverified" else None)  # type: ignore[arg-type]
             for i, v in enumerate(verdicts)]
    conclude(result, tasks)
    return result


def test_unverified_tasks_are_counted_apart_in_the_verdict_json_and_summary() -> None:
    """Reproduced plus unverified: the run is reproduced (exit 0), the JSON counts unverified
    apart, and the table and summary name the unverified task; all unverified: nothing was
    compared, so the run is "unverified" (exit 1), never reproduced; a differing task wins."""
    mixed = _result("reproduced", "unverified", "reproduced")
    assert mixed.verdict == "reproduced" and mixed.reproduced and mixed.exit_code == 0
    assert mixed.counts == {"reproduced": 2, "unverified": 1}
    assert mixed.model_dump(mode="json")["counts"] == {"reproduced": 2, "unverified": 1}
    buf = io.StringIO()
    render_result(Console(file=buf, width=200, color_system=None), mixed)
    text = buf.getvalue()
    assert "reproduced: 2/3 task runs match, 1 unverified" in text and "t1" in text
    assert "no stable hash" in text  # the table's result column for t1
    only = _result("unverified", "unverified")
    assert only.verdict == "unverified" and not only.reproduced and only.exit_code == 1
    assert "unverified" in summary_line(only) and "nothing could be compared" in summary_line(only)
    bad = _result("unverified", "differs")
    assert bad.verdict == "not-reproduced" and bad.counts == {"unverified": 1, "differs": 1}
    assert "differs: t1" in summary_line(bad)


def _ended(recorded: str, replayed: str, message: str, *verdicts: str) -> ReplayResult:
    from reproflow.replay._models import ReplayPlan, TaskVerdict
    from reproflow.replay._replay import conclude

    plan = ReplayPlan(run_id="r", flow_name="f", status=recorded, engine="prefect", python_recorded="3.11.7",
                      environment_hash="e")
    result = ReplayResult(run_id="r", replay_run_id="n", verdict="dry-run", plan=plan, recorded_state=recorded,
                          flow_state=replayed, flow_message=message)
    conclude(result, [TaskVerdict(task_name=f"t{i}", verdict=v) for i, v in enumerate(verdicts)])  # type: ignore[arg-type]
    return result


def test_a_flow_that_ends_otherwise_than_recorded_is_not_reproduced() -> None:
    """Every task matched, but the flow run did not end as recorded (the flow body raised after
    its tasks, or a recorded failure did not happen again): not reproduced, exit 1, and the summary
    says how each ended. A recorded failure that the replay repeats is reproduced, and the summary
    says the run failed, both times, with the replay's error."""
    broke = _ended("COMPLETED", "FAILED", "Flow run encountered an exception: AssertionError: too big",
                   "reproduced", "reproduced")
    assert broke.verdict == "not-reproduced" and not broke.reproduced and broke.exit_code == 1
    line = summary_line(broke)
    assert "recorded run COMPLETED" in line and "replay FAILED" in line and "AssertionError: too big" in line
    healed = _ended("FAILED", "COMPLETED", "", "reproduced")
    assert healed.verdict == "not-reproduced" and healed.exit_code == 1
    assert "recorded run FAILED" in summary_line(healed) and "replay COMPLETED" in summary_line(healed)
    same = _ended("FAILED", "FAILED", "Flow run encountered an exception: RuntimeError: over the limit",
                  "reproduced", "reproduced")
    assert same.verdict == "reproduced" and same.exit_code == 0
    line = summary_line(same)
    assert "reproduced" in line and "failed as recorded" in line and "RuntimeError: over the limit" in line
    assert _ended("COMPLETED", "COMPLETED", "", "reproduced").verdict == "reproduced"
    assert "failed" not in summary_line(_ended("COMPLETED", "COMPLETED", "", "reproduced"))


def test_a_restored_input_says_where_it_came_from() -> None:
    """An input put in place before the replay is named with how: from its original path, from
    the copy stored at record time (it said "restored from the store" for all of them)."""
    from reproflow.replay._models import InputCheck

    result = _result("reproduced")
    result.inputs = [
        InputCheck(uri="/w/one.tok", expected="a", actual="a", status="restored", note="copied from /w/one.tok (read only)"),
        InputCheck(uri="/w/raw.csv", expected="b", actual="b", status="restored",
                   note="restored from the copy stored at record time"),
    ]
    buf = io.StringIO()
    render_result(Console(file=buf, width=200, color_system=None), result)
    text = buf.getvalue()
    assert "input restored: /w/one.tok (copied from /w/one.tok (read only))" in text
    assert "input restored: /w/raw.csv (restored from the copy stored at record time)" in text
    assert "from the store" not in text


def test_a_file_both_returned_and_a_parameter_s_output_is_one_cause_line() -> None:
    """A task returning the Path it was passed and wrote records the file twice (the parameter's
    output and the return value's): the table named the same difference twice. Each differing
    file is named once, in the order recorded, before the causes."""
    from reproflow.replay._models import OutputCheck

    result = _result("differs")
    v = result.tasks[0]
    v.outputs = [OutputCheck(uri="/w/models/mean.pkl", param="model_path", expected="a" * 64, actual="b" * 64, match=False),
                 OutputCheck(uri="/w/models/mean.pkl", param="return", expected="a" * 64, actual="b" * 64, match=False),
                 OutputCheck(uri="/w/log.txt", param="return", expected="c" * 64, actual="d" * 64, match=False)]
    v.causes = ["nondeterminism in this task"]
    buf = io.StringIO()
    render_result(Console(file=buf, width=400, color_system=None), result)
    text = buf.getvalue()
    assert text.count("/w/models/mean.pkl") == 1
    assert text.index("/w/models/mean.pkl") < text.index("/w/log.txt") < text.index("nondeterminism")

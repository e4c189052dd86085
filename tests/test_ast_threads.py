"""reproflow's parses of Python source beside other threads (CPython gh-106905: the AST
constructor's recursion depth is shared by every thread, so a parse in another thread can make
one fail with a spurious SystemError), and a check that fails never fails the task."""

from __future__ import annotations

import ast

import pytest

from reproflow import _ast


def test_a_spurious_depth_mismatch_is_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ast.parse
    calls = []

    def flaky(*args: object, **kwargs: object) -> ast.Module:
        calls.append(args)
        if len(calls) < 3:
            raise SystemError("AST constructor recursion depth mismatch (before=81, after=133)")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ast, "parse", flaky)
    tree = _ast.parse("x = 1\n", "m.py", type_comments=False)
    assert isinstance(tree.body[0], ast.Assign) and len(calls) == 3


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SyntaxError):
        _ast.parse("def (:\n")

    def broken(*args: object, **kwargs: object) -> ast.Module:
        raise SystemError("something else")

    monkeypatch.setattr(ast, "parse", broken)
    with pytest.raises(SystemError, match="something else"):
        _ast.parse("x = 1\n")


def test_reproflow_parses_only_through_the_lock() -> None:
    """Every ast.parse in reproflow goes through reproflow._ast (a new one would race again)."""
    import pathlib

    src = pathlib.Path(_ast.__file__).parent
    direct = [str(p.relative_to(src)) for p in src.rglob("*.py")
              if p.name != "_ast.py" and "ast.parse(" in p.read_text()]
    assert direct == []


def test_a_check_that_fails_leaves_the_task_without_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The static checks run at a task's first call; whatever they raise (here the spurious
    SystemError every retry hit) the task is recorded without findings, and they are tried again
    at the next call."""
    import reproflow.checks as checks
    from reproflow.recorder import _attempt

    def task_fn(x: int) -> int:
        return x

    def failing(fn: object) -> list[object]:
        raise SystemError("AST constructor recursion depth mismatch (before=1, after=2)")

    monkeypatch.setattr(checks, "check_function", failing)
    assert _attempt._findings_for(task_fn) == []
    monkeypatch.undo()
    assert _attempt._findings_for(task_fn) == list(checks.check_function(task_fn))

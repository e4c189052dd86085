"""Reading a task's function back from its run's stored source snapshot (diff's "source changed")."""

from __future__ import annotations

import io
import pathlib
import sys
import tarfile

sys.path.insert(0, str(pathlib.Path(__file__).parent / "export"))

from rf_factory import T0, make_run  # noqa: E402

from reproflow.analysis._task_source import SnapshotReader, changed_lines
from reproflow.records import SourceSnapshot, TaskRecord
from reproflow.store import Store

V1 = '''import os


@task(retries=1)
def fit(x):
    return x + 1


class Model:
    def predict(self, x):
        return x
'''
#: fit only moved down and got a comment; Model.predict's body changed
MOVED = "# a header line\n" + V1.replace("    return x + 1", "    # add one\n    return x + 1").replace(
    "        return x\n", "        return 2 * x\n")


def _run(store: Store, run_id: str, text: str, function_file: str) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = text.encode()
        info = tarfile.TarInfo("pkg/flow.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    source = SourceSnapshot(kind="git", root="/repo", blob=store.put_blob(buf.getvalue()), files=1)
    tasks = [TaskRecord(run_id=run_id, task_run_id=f"{run_id}-{q}", task_name=q, task_key=f"{q}-{run_id}",
                        function=f"pkg.flow:{q}", function_file=function_file, state="COMPLETED", started_at=T0,
                        ended_at=T0, duration_s=0, parameters_hash="p")
             for q in ("fit", "Model.predict", "gone")]  # fmt: skip
    return make_run(store, run_id=run_id, tasks=tasks, source=source)


def test_definitions_compare_by_syntax_tree(store: Store) -> None:
    """A function that only moved (lines above it, a comment) has the same digest; a changed
    method body does not; the text keeps the decorator; a name not in the file is None; the
    recorded file may be absolute (under the source root) or relative."""
    a = store.load_run(_run(store, "run-a", V1, "/repo/pkg/flow.py"))
    b = store.load_run(_run(store, "run-b", MOVED, "pkg/flow.py"))
    ra, rb = SnapshotReader(store, a), SnapshotReader(store, b)
    fa = {t.task_name: ra.function(t) for t in a.final_tasks()}
    fb = {t.task_name: rb.function(t) for t in b.final_tasks()}
    assert fa["gone"] is None and fb["gone"] is None
    assert fa["fit"].label == "pkg/flow.py:fit" and fa["fit"].text.startswith("@task(retries=1)\ndef fit(x):")  # type: ignore[union-attr]
    assert fa["fit"].digest == fb["fit"].digest  # type: ignore[union-attr]
    assert fa["Model.predict"].digest != fb["Model.predict"].digest  # type: ignore[union-attr]
    assert changed_lines(fa["Model.predict"].text, fb["Model.predict"].text) == (1, 1)  # type: ignore[union-attr]

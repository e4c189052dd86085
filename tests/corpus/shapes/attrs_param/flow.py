"""An attrs class defined in flow.py as the flow's parameter, and returned by a task (issue 10,
shapes 2 and 3): attrs instances had no stable hash and were recorded as "opaque"."""
import attrs
from prefect import flow

from reproflow import repro_task


@attrs.define
class Window:
    size: int = 3
    _step: int = attrs.field(default=1, alias="step")
    name: str = attrs.field(default="w", init=False)


@attrs.frozen
class Stats:
    mean: float
    n: int


@repro_task
def windows(w: Window, n: int) -> list[list[int]]:
    return [list(range(i, i + w.size)) for i in range(0, n - w.size + 1, w._step)]


@repro_task
def stats(rows: list[list[int]]) -> list[Stats]:
    return [Stats(sum(r) / len(r), len(r)) for r in rows]


@flow
def sliding(w: Window = Window(step=2), n: int = 9) -> None:
    stats(windows(w, n))


if __name__ == "__main__":
    sliding()

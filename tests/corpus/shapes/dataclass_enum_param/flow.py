"""A dataclass and an enum, both defined in flow.py, as flow parameters at their defaults (issue 10,
shapes 2 and 3): recorded as "opaque", and the enum's type named __main__, which the replay
cannot import."""
import enum
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow

from reproflow import repro_task


class Mode(enum.Enum):
    SUM = "sum"
    MAX = "max"


@dataclass(frozen=True)
class Options:
    src: Path = Path("data/values.txt")
    scale: float = 2.0
    skip: tuple[int, ...] = (0,)
    labels: dict[str, int] = field(default_factory=lambda: {"a": 1})


@repro_task
def read(opts: Options) -> list[int]:
    rows = [int(x) for x in opts.src.read_text().split()]
    return [r for i, r in enumerate(rows) if i not in opts.skip]


@repro_task
def combine(rows: list[int], mode: Mode, opts: Options) -> float:
    total = sum(rows) if mode is Mode.SUM else max(rows)
    return total * opts.scale


@flow
def pipeline(opts: Options = Options(), mode: Mode = Mode.SUM) -> float:
    return combine(read(opts), mode, opts)


if __name__ == "__main__":
    pipeline()

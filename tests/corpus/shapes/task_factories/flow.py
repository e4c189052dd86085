"""Tasks made from more than a function, as pipelines make them: ``functools.partial`` (one
function, several tasks with different fixed arguments, one of them a folder the task writes
into), a callable object, a bound method and a task a factory function returns (a closure).
Before, a partial's record named ``functools.partial(<function scale at 0x...>, 3)`` (a memory
address) and a callable object's its ``repr``, and ``reproflow replay`` refused the whole record
as damaged."""
import functools
from pathlib import Path

from prefect import flow

from reproflow import repro_task


def scale(factor: int, x: int) -> int:
    return factor * x


def write_number(n: int, name: str, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.txt"
    target.write_text(f"{n}\n")
    return target


class Adder:
    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, x: int) -> int:
        return x + self.k


class Scorer:
    def __init__(self, weights: list[float]) -> None:
        self.weights = weights

    def score(self, values: list[int]) -> float:
        return sum(w * v for w, v in zip(self.weights, values))


def make_labeler(prefix: str):
    @repro_task(name=f"label-{prefix}")
    def label(value: float) -> str:
        return f"{prefix}:{value:.2f}"

    return label


triple = repro_task(functools.partial(scale, 3), name="triple")
double = repro_task(functools.partial(scale, factor=2), name="double")
write_out = repro_task(functools.partial(write_number, out_dir=Path("out")), name="write_out")
add_two = repro_task(Adder(2), name="add_two")
score = repro_task(Scorer([0.5, 0.25, 0.25]).score, name="score")
label_a = make_labeler("a")


@flow
def pipeline() -> str:
    t = triple(5)
    doubled = [f.result() for f in double.map(x=[1, 2, 3])]
    n = add_two(t)
    write_out(n, "n")
    return label_a(score(doubled))


if __name__ == "__main__":
    print(pipeline())

"""Prefect's task options as people use them: a task that fails once then succeeds on retry (an
attempt counter in a file), futures from .submit() passed straight into other tasks, .map()
over two iterables with an unmapped future, a task called with return_state=True, task_run_name
templates, with_options(), and Prefect's own result caching (cache_policy, cache_key_fn). And
make-style caching by hand: a task that skips its work when its output file exists, so the run
replayed (the second) only read what the first wrote."""
from datetime import timedelta
from pathlib import Path

from prefect import flow, unmapped
from prefect.cache_policies import INPUTS
from prefect.tasks import task_input_hash

from reproflow import repro_task

ATTEMPTS = Path("work/attempts.txt")


@repro_task(retries=2, retry_delay_seconds=0)
def fetch(n: int) -> list[int]:
    """A flaky source: the first attempt of every run fails, the retry succeeds."""
    ATTEMPTS.parent.mkdir(parents=True, exist_ok=True)
    tries = int(ATTEMPTS.read_text()) if ATTEMPTS.exists() else 0
    ATTEMPTS.write_text(str(tries + 1))
    if tries == 0:
        raise ConnectionError("transient failure, try again")
    return list(range(1, n + 1))


@repro_task(task_run_name="square-{x}")
def square(x: int) -> int:
    return x * x


@repro_task(cache_policy=INPUTS, cache_expiration=timedelta(days=1))
def weight(xs: list[int]) -> int:
    return sum(xs)


@repro_task(cache_key_fn=task_input_hash)
def scale(xs: list[int], factor: int) -> list[int]:
    return [x * factor for x in xs]


@repro_task
def combine(a: int, b: int, offset: int) -> int:
    return a + b + offset


@repro_task
def total(values: list[int], scaled: list[int]) -> int:
    return sum(values) + sum(scaled)


@repro_task(outputs=["dst"])
def save(value: int, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(f"{value}\n")


@repro_task
def tokens(src: Path, dst: Path) -> Path:
    if not dst.exists():  # done by an earlier run: skipped
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("\n".join(src.read_text().split()))
    return dst


@repro_task
def count_tokens(path: Path) -> int:
    return len(path.read_text().split())


@flow
def pipeline(n: int = 4) -> int:
    xs = fetch(n)
    squares = square.map(xs)                      # futures
    w = weight.submit(xs)                         # a future passed on unresolved
    scaled = scale.submit(xs, 3)
    combined = combine.map(squares, [10, 20, 30, 40], offset=unmapped(w))
    state = total(combined, scaled, return_state=True)
    value = state.result()
    save.with_options(name="save-total", task_run_name="save-{value}")(value, Path("out/total.txt"))
    count_tokens(tokens(Path("data/words.txt"), Path("work/words.tok")))
    return value


if __name__ == "__main__":
    pipeline()

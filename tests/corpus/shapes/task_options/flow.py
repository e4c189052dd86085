"""Prefect's task options as people use them: a task that fails once then succeeds on retry (an
attempt counter in a file), futures from .submit() passed straight into other tasks, .map()
over two iterables with an unmapped future, a task called with return_state=True, task_run_name
templates, with_options(), and Prefect's own result caching (cache_policy, cache_key_fn). And
make-style caching by hand: a task that skips its work when its output file exists, so the run
replayed (the second) only read what the first wrote. And tasks wrapped in the user's own
functools.wraps decorators, under @repro_task (the task sees the wrapper, whose signature is the
function's through __wrapped__) and over it (the flow calls a plain function that calls the
task), one of them given its paths in a dict of settings, as configs are passed."""
import functools
import json
import time
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


def timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _ = time.perf_counter() - t0

    return wrapper


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@repro_task
@timed
def clean(src: Path, dest: Path) -> int:
    rows = [r.strip() for r in src.read_text().split() if r.strip()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(sorted(rows)) + "\n")
    return len(rows)


@logged
@repro_task
def summarize(config: dict) -> Path:
    words = config["table"].read_text().split()
    out = config["out_dir"] / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"words": len(words), "scaled": config["scale"] * len(words)}, sort_keys=True))
    return out


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
    clean(Path("data/words.txt"), Path("out/clean.txt"))
    summarize({"table": Path("out/clean.txt"), "out_dir": Path("out"), "scale": 0.5})
    return value


if __name__ == "__main__":
    pipeline()

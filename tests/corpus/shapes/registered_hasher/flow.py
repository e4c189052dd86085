"""The unhashable_result pipeline with a hasher registered for its model class (issue 10, shape 7):
the fitted model now hashes by its learned state, so the replay compares it."""
import threading
from pathlib import Path

from prefect import flow

from reproflow import register_hasher, repro_task


class MeanModel:
    """A toy estimator: fit() learns the mean, predict() returns it, guarded by a lock (pickle
    cannot save a lock, so the model's state is nothing reproflow can hash by itself)."""

    def __init__(self) -> None:
        self.mean_: float | None = None
        self._lock = threading.Lock()

    def fit(self, xs: list[float]) -> "MeanModel":
        self.mean_ = sum(xs) / len(xs)
        return self

    def predict(self, n: int) -> list[float]:
        with self._lock:
            assert self.mean_ is not None
            return [self.mean_] * n


register_hasher(MeanModel, lambda m: {"mean": m.mean_})


@repro_task
def load(src: Path) -> list[float]:
    return [float(x) for x in src.read_text().split()]


@repro_task
def fit(xs: list[float]) -> MeanModel:
    return MeanModel().fit(xs)


@repro_task
def predict(model: MeanModel, n: int) -> list[float]:
    return model.predict(n)


@flow
def pipeline(src: Path = Path("data/xs.txt")) -> None:
    predict(fit(load(src)), 2)


if __name__ == "__main__":
    pipeline()

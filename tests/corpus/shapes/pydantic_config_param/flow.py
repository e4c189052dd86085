"""A pydantic config object as the flow's parameter, left at its default (issue 10, shape 2):
it was recorded as "opaque" and the replay refused to run ("cannot be rebuilt")."""
import json

from prefect import flow

from reproflow import repro_task
from settings import TrainConfig


@repro_task
def load(cfg: TrainConfig) -> list[float]:
    return [float(x) for x in cfg.paths.src.read_text().split()]


@repro_task
def fit(xs: list[float], cfg: TrainConfig) -> float:
    w = 0.0
    for _ in range(cfg.epochs):
        for x in xs:
            w += cfg.learning_rate * (x - w)
    return round(w, 9)


@repro_task
def report(w: float, cfg: TrainConfig) -> TrainConfig:
    cfg.paths.report.parent.mkdir(parents=True, exist_ok=True)
    cfg.paths.report.write_text(json.dumps({"w": w, "tags": sorted(cfg.tags)}))
    return cfg


@flow
def train(cfg: TrainConfig = TrainConfig()) -> None:
    report(fit(load(cfg), cfg), cfg)


if __name__ == "__main__":
    train()

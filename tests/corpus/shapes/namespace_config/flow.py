"""Configuration as research scripts pass it around whole: argparse's Namespace (``main(args)``),
and as the flow's defaults a types.SimpleNamespace of options and a plain class defined in the
script whose __init__ sets its settings (no dataclass), each given to the tasks as one parameter."""
import argparse
import json
from pathlib import Path
from types import SimpleNamespace

from prefect import flow

from reproflow import repro_task


class Settings:
    def __init__(self, epochs: int = 3, out: str = "out") -> None:
        self.epochs = epochs
        self.out = Path(out)
        self.history: list[float] = []


@repro_task
def load(args: argparse.Namespace) -> list[float]:
    return [float(x) for x in Path(args.data).read_text().split()]


@repro_task
def fit(xs: list[float], args: argparse.Namespace, settings: Settings) -> float:
    w = 0.0
    for _ in range(settings.epochs):
        for x in xs:
            w += args.lr * (x - w)
    return round(w, 9)


@repro_task
def save(w: float, settings: Settings, fmt: SimpleNamespace) -> None:
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / f"model.{fmt.suffix}").write_text(json.dumps({"w": w}, indent=fmt.indent))


@flow
def main(args: argparse.Namespace, fmt: SimpleNamespace = SimpleNamespace(suffix="json", indent=2),
         settings: Settings = Settings(epochs=2)) -> None:
    save(fit(load(args), args, settings), settings, fmt)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/numbers.txt")
    parser.add_argument("--lr", type=float, default=0.5)
    main(parser.parse_args())

"""Tasks that are methods of a class defined in the script: ``@repro_task`` on ``def load(self,
...)``, the object made in the flow holding its settings in attributes, replayed one task alone
(``--task total``): the object (``self``) is rebuilt from its recorded attributes."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task


class Pipeline:
    def __init__(self, scale: float) -> None:
        self.scale = scale

    @repro_task
    def load(self, src: Path) -> list[float]:
        return [float(x) * self.scale for x in src.read_text().split()]

    @repro_task
    def total(self, xs: list[float]) -> float:
        return sum(xs) + self.scale


@flow
def main(src: Path = Path("data/x.txt")) -> float:
    p = Pipeline(2.0)
    return p.total(p.load(src))


if __name__ == "__main__":
    print(main())

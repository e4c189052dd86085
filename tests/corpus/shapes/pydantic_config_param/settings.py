"""The pipeline's configuration: pydantic models, imported by flow.py."""
from pathlib import Path

from pydantic import BaseModel, Field


class Paths(BaseModel):
    src: Path = Path("data/numbers.txt")
    report: Path = Path("out/report.json")


class TrainConfig(BaseModel):
    learning_rate: float = Field(0.1, alias="learningRate")
    epochs: int = 3
    tags: set[str] = {"baseline"}
    paths: Paths = Paths()

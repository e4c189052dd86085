"""Tasks that return and take instances of classes defined in flow.py itself, run as
``python flow.py`` (issue 10, shape 3): their hashes named the module ``__main__`` at record time
and the replay's module at replay, so every such task "differed" though nothing changed."""
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from prefect import flow
from pydantic import BaseModel

from reproflow import repro_task


class Kind(enum.IntEnum):
    WORD = 1
    NUMBER = 2


@dataclass
class Token:
    text: str
    kind: Kind


class Span(NamedTuple):
    start: int
    end: int


class Summary(BaseModel):
    counts: dict[str, int]
    longest: Token
    spans: list[Span]


@repro_task
def tokenize(src: Path) -> list[Token]:
    return [Token(w, Kind.NUMBER if w.isdigit() else Kind.WORD) for w in src.read_text().split()]


@repro_task
def group(tokens: list[Token]) -> dict[str, list[Token]]:
    out: dict[str, list[Token]] = {}
    for t in tokens:
        out.setdefault(t.kind.name, []).append(t)
    return out


@repro_task
def summarize(groups: dict[str, list[Token]], tokens: list[Token]) -> Summary:
    longest = max(tokens, key=lambda t: (len(t.text), t.text))
    spans, pos = [], 0
    for t in tokens:
        spans.append(Span(pos, pos + len(t.text)))
        pos += len(t.text) + 1
    return Summary(counts={k: len(v) for k, v in groups.items()}, longest=longest, spans=spans)


@repro_task
def describe(summary: Summary) -> str:
    return f"{summary.longest.text}:{sorted(summary.counts.items())}:{len(summary.spans)}"


@flow
def pipeline(src: Path = Path("data/text.txt")) -> str:
    tokens = tokenize(src)
    return describe(summarize(group(tokens), tokens))


if __name__ == "__main__":
    pipeline()

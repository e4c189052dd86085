"""Tasks that return and take instances of classes defined in flow.py itself, run as
``python flow.py`` (issue 10, shape 3): their hashes named the module ``__main__`` at record time
and the replay's module at replay, so every such task "differed" though nothing changed. And a
task that pickles one to a file (a model saved for the next task, as ``torch.save`` and joblib do):
the pickle names the class's module, ``__main__`` at record time, so it differed too until the
replay ran the script's classes as ``__main__``'s."""
import enum
import pickle
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


def shout(text: str) -> str:
    return text.upper()


@repro_task
def save(summary: Summary, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as fh:
        # not the pydantic model itself: its pickle holds a set (the fields set), in an order
        # that string hashing decides anew in each process
        pickle.dump((summary.longest, summary.spans, Kind.NUMBER, shout), fh, protocol=4)
    return dst


@repro_task
def load(src: Path) -> str:
    with open(src, "rb") as fh:
        longest, spans, kind, fn = pickle.load(fh)
    return fn(f"{kind.name}:{longest.text}:{len(spans)}")


@flow
def pipeline(src: Path = Path("data/text.txt"), out: Path = Path("out/summary.pkl")) -> str:
    tokens = tokenize(src)
    summary = summarize(group(tokens), tokens)
    load(save(summary, out))
    return describe(summary)


if __name__ == "__main__":
    pipeline()

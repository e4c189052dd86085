"""Results kept in an SQLite database in WAL mode through one connection the module holds open
(as a connection pool or an ORM's engine keeps it) for the whole flow: every task hashing the
database once freed the connection's POSIX locks (closing any descriptor of a file drops them),
and its log `results.db-wal` (random salts, new bytes every run) was an output compared as data.
Now the database is hashed through the connection's own descriptor, the index `-shm` is no
output, and the log is recorded without a hash, saying why: the writing task is "unverified"
with that reason, the others reproduce."""
import sqlite3
from pathlib import Path

from prefect import flow

from reproflow import repro_task

_conn: dict[str, sqlite3.Connection] = {}


def db(path: Path) -> sqlite3.Connection:
    if str(path) not in _conn:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS words (line INTEGER, word TEXT)")
        _conn[str(path)] = conn
    return _conn[str(path)]


@repro_task
def load(src: Path, store: Path) -> int:
    conn = db(store)
    rows = [(i, w) for i, line in enumerate(src.read_text().splitlines()) for w in line.split()]
    conn.execute("DELETE FROM words")
    conn.executemany("INSERT INTO words VALUES (?, ?)", rows)
    conn.commit()
    return len(rows)


@repro_task
def longest(store: Path, n: int) -> list[str]:
    return [w for (w,) in db(store).execute("SELECT word FROM words ORDER BY length(word) DESC, word LIMIT ?", (n,))]


@flow
def sqlite_open(src: Path = Path("data/lines.txt"), store: Path = Path("results/words.db")) -> list[str]:
    count = load(src, store)
    return longest(store, min(count, 3))


if __name__ == "__main__":
    print(sqlite_open())

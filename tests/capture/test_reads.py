"""The audit hook behind undeclared inputs (capture/_reads.py): what counts as a read of data,
and which task attempt it belongs to."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from reproflow.capture import _reads


def test_reads_are_data_files_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data read is kept; a written file, a folder, code, the standard library, site-packages,
    /proc, the machine's configuration (/etc: mimetypes under fsspec reads /etc/mime.types), a
    dotfile of the home and a path the task named are left out."""
    data, named, out, folder = tmp_path / "data.csv", tmp_path / "named.csv", tmp_path / "out.txt", tmp_path / "d"
    data.write_text("x")
    named.write_text("y")
    folder.mkdir()
    (folder / "inside.txt").write_text("z")
    (tmp_path / "helper.py").write_text("")
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]")
    monkeypatch.setenv("HOME", str(home))
    reads, token = _reads.start()
    try:
        data.read_text()
        named.read_text()
        (folder / "inside.txt").read_text()
        (tmp_path / "helper.py").read_text()
        out.write_text("w")
        out.read_text()  # read back what it wrote: still its own output
        os.listdir(folder)
        Path(json.__file__).read_text()  # the standard library
        Path("/proc/self/status").read_text()
        (home / ".aws" / "credentials").read_text()  # a tool's own configuration (boto3's)
        for system_file in ("/etc/hostname", "/etc/mime.types", "/etc/passwd"):
            if os.path.isfile(system_file):
                Path(system_file).read_bytes()
        fd = os.open(data, os.O_RDONLY)
        os.close(fd)
    finally:
        _reads.stop(token)
    data.read_text()  # after the task: not watched
    found = _reads.undeclared_reads(reads, [str(named), str(folder)])
    assert found == [os.path.realpath(data)]


def test_reads_belong_to_the_attempt_of_their_thread(tmp_path: Path) -> None:
    """Two tasks in two threads at once each see only their own reads."""
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for f in files:
        f.write_text(f.name)
    seen: dict[str, list[str]] = {}
    barrier = threading.Barrier(2)

    def task(mine: Path) -> None:
        reads, token = _reads.start()
        try:
            barrier.wait()
            mine.read_text()
            barrier.wait()
        finally:
            _reads.stop(token)
        seen[mine.name] = _reads.undeclared_reads(reads, [])

    threads = [threading.Thread(target=task, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {f.name: [os.path.realpath(f)] for f in files}


def test_a_long_attempt_keeps_its_neighbours_writes_known_until_it_ends(tmp_path: Path) -> None:
    """Many attempts beside one long one (a map beside a slow task): their writes stay known while
    the long one runs, and once it ends they are forgotten, except by an attempt that ran beside
    it; the registry holds nothing once no attempt runs (it is kept in start and end order, so a
    1,000-task map costs each attempt's end constant time)."""
    for left in list(_reads._running.values()):
        _reads.done(left)
    long_one, t_long = _reads.start()
    _reads.stop(t_long)
    files = []
    for i in range(50):
        r, t = _reads.start()
        f = tmp_path / f"{i}.txt"
        f.write_text(str(i))
        _reads.stop(t)
        _reads.done(r)
        files.append(f)
    assert all(_reads.written_by_another(str(f), long_one) for f in files)  # it ran beside them all
    (tmp_path / "long.txt").write_text("L")
    _reads._writers[str(tmp_path / "long.txt")] = long_one  # as the hook records a write of it
    long_one.written.add(str(tmp_path / "long.txt"))
    late, t_late = _reads.start()  # starts after the 50 ended, while the long one runs
    _reads.stop(t_late)
    _reads.done(long_one)
    assert not any(_reads.written_by_another(str(f), late) for f in files)  # it never ran beside them
    assert _reads.written_by_another(str(tmp_path / "long.txt"), late)  # it ran beside the long one
    _reads.done(late)
    assert not _reads._writers and not _reads._running and not _reads._order and not _reads._ended


def test_a_writer_is_known_while_an_attempt_beside_it_runs(tmp_path: Path) -> None:
    """Which attempt wrote a file: known to the attempts that ran beside the writer (its file
    may appear in a folder they read or write into), in flight until the writer is done, and
    forgotten once no attempt that ran beside it still runs."""
    for left in list(_reads._running.values()):  # attempts the tests above started by hand and never ended
        _reads.done(left)
    fa = tmp_path / "a.txt"
    ra, ta = _reads.start()
    fa.write_text("A")
    _reads.stop(ta)
    rb, tb = _reads.start()  # starts while A has not recorded its outputs yet
    _reads.stop(tb)
    assert _reads.in_flight(str(fa)) and _reads.written_by_another(str(fa), rb)
    assert not _reads.written_by_another(str(fa), ra)  # its own
    _reads.done(ra)
    assert not _reads.in_flight(str(fa)) and _reads.written_by_another(str(fa), rb)
    _reads.done(rb)
    rc, tc = _reads.start()  # nothing that ran beside A runs now: A's write is forgotten
    _reads.stop(tc)
    assert not _reads.written_by_another(str(fa), rc)
    _reads.done(rc)

"""Streaming file hashes, directory trees and the stat-keyed cache."""

from __future__ import annotations

import hashlib
import os
import pathlib
import time

import pytest

from reproflow.capture import _files as _hashing
from reproflow.capture._files import hash_local, hash_local_signed, hash_path, sha256_file, stat_signature, tree_digest


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    _hashing.clear_memory_cache()


def _old(path: pathlib.Path) -> None:
    """Make a file's mtime old enough that the cache trusts it (not racily clean)."""
    t = time.time() - 10
    os.utime(path, (t, t))


def test_file_hash_matches_hashlib(tmp_path: pathlib.Path) -> None:
    """A multi-chunk file hashes exactly as hashlib does."""
    p = tmp_path / "f.bin"
    data = os.urandom(3 * _hashing.CHUNK + 123)
    p.write_bytes(data)
    assert sha256_file(p) == (hashlib.sha256(data).hexdigest(), len(data))


def test_unchanged_file_is_not_rehashed_but_a_changed_one_is(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second hash of an unchanged file is served by the cache; rewriting it invalidates."""
    p = tmp_path / "f.bin"
    p.write_bytes(b"a" * _hashing.SMALL_FILE)
    _old(p)
    first = sha256_file(p)
    calls = []
    real = _hashing._stream
    monkeypatch.setattr(_hashing, "_stream", lambda *a: calls.append(a) or real(*a))
    assert sha256_file(p) == first and calls == []
    _hashing.clear_memory_cache()
    assert sha256_file(p) == first and calls == []  # from the on-disk cache, across "runs"
    p.write_bytes(b"b" * _hashing.SMALL_FILE)
    _old(p)
    assert sha256_file(p)[0] == hashlib.sha256(b"b" * _hashing.SMALL_FILE).hexdigest()
    assert len(calls) == 1


def test_small_files_are_cached_in_memory_only(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file under SMALL_FILE bytes is hashed once per process and never looked up in or
    written to SQLite (hashing it costs what the lookup does); a racily clean file of any size
    is not looked up either."""
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * (_hashing.SMALL_FILE - 1))
    _old(small)
    fresh = tmp_path / "fresh.bin"
    fresh.write_bytes(b"f" * _hashing.SMALL_FILE)
    calls = []
    real = _hashing._stream
    monkeypatch.setattr(_hashing, "_stream", lambda *a: calls.append(a[0]) or real(*a))
    lookups = []
    real_db = _hashing._db
    monkeypatch.setattr(_hashing, "_db", lambda: lookups.append(1) or real_db())
    digest = sha256_file(small)
    assert digest == (hashlib.sha256(small.read_bytes()).hexdigest(), _hashing.SMALL_FILE - 1)
    assert sha256_file(small) == digest and calls == [str(small)]  # the second from memory
    assert sha256_file(fresh)[0] == hashlib.sha256(fresh.read_bytes()).hexdigest()
    _hashing.clear_memory_cache()
    assert lookups == []  # no lookup, nothing written
    assert sha256_file(small) == digest and calls == [str(small), str(fresh), str(small)]


def test_racily_clean_files_are_not_cached(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file modified just now is hashed again next time (a same-tick rewrite would keep its stat)."""
    p = tmp_path / "fresh.txt"
    p.write_text("x")
    sha256_file(p)
    calls = []
    real = _hashing._stream
    monkeypatch.setattr(_hashing, "_stream", lambda *a: calls.append(a) or real(*a))
    sha256_file(p)
    assert len(calls) == 1


def test_directory_tree_hash(tmp_path: pathlib.Path) -> None:
    """A directory hashes as the sorted (name, sha256) tree; renaming a file changes it."""
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("A")
    (d / "sub" / "b.txt").write_text("B")
    ref = hash_local(d)
    expected = tree_digest([("a.txt", hashlib.sha256(b"A").hexdigest()), ("sub/b.txt", hashlib.sha256(b"B").hexdigest())])
    assert (ref.kind, ref.sha256, ref.size, ref.n_files) == ("directory", expected, 2, 2)
    (d / "a.txt").rename(d / "c.txt")
    assert hash_local(d).sha256 != expected


def test_missing_paths_and_file_urls(tmp_path: pathlib.Path) -> None:
    """A missing path is kind='missing'; file:// URLs hash like paths."""
    assert hash_path(str(tmp_path / "nope")).kind == "missing"
    p = tmp_path / "x"
    p.write_bytes(b"x")
    assert hash_path(f"file://{p}").sha256 == hashlib.sha256(b"x").hexdigest()


def test_memory_url_hashes_through_fsspec() -> None:
    """A non-local fsspec URL streams through fsspec (memory:// here)."""
    import fsspec

    with fsspec.open("memory://bucket/obj.bin", "wb") as fh:
        fh.write(b"remote bytes")
    ref = hash_path("memory://bucket/obj.bin")
    assert ref.sha256 == hashlib.sha256(b"remote bytes").hexdigest() and ref.size == 12


def test_cache_entries_reach_sqlite_from_every_thread_in_one_connection(tmp_path: pathlib.Path) -> None:
    """Threads share one SQLite connection, entries are written in batches, and none is lost:
    after ``clear_memory_cache`` (or at exit) every hashed file is in the on-disk cache."""
    import sqlite3
    import threading

    files = []
    for i in range(40):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(_hashing.SMALL_FILE + i))
        old = time.time() - 10
        os.utime(p, (old, old))
        files.append(p)
    threads = [threading.Thread(target=sha256_file, args=(p,)) for p in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _hashing.clear_memory_cache()
    db = _hashing.cache_dir() / "hashes.sqlite3"
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT path, sha256 FROM h").fetchall())
    assert {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}.items() <= rows.items()


@pytest.mark.parametrize("size", [0, 1, 1024, _hashing.SMALL_FILE, _hashing.CHUNK - 1, _hashing.CHUNK, _hashing.CHUNK + 1])
def test_every_size_hashes_as_hashlib_does(tmp_path: pathlib.Path, size: int) -> None:
    """Small files are read in one call, larger ones streamed: the same digest either way."""
    p = tmp_path / "f.bin"
    data = os.urandom(size)
    p.write_bytes(data)
    assert sha256_file(p) == (hashlib.sha256(data).hexdigest(), size)


def test_a_file_that_grew_after_its_stat_is_hashed_to_its_end(tmp_path: pathlib.Path) -> None:
    """The one-read path asks for one byte more than the stat said: a file that grew since is
    read to its end, not cut at its old size."""
    p = tmp_path / "f.bin"
    data = os.urandom(5000)
    p.write_bytes(data)
    assert _hashing._stream(str(p), 1000, None) == hashlib.sha256(data).hexdigest()
    assert _hashing._stream(str(p), 9000, None) == hashlib.sha256(data).hexdigest()  # it shrank


def test_hash_local_signed_gives_the_stat_signature_it_hashed_by(tmp_path: pathlib.Path) -> None:
    """A file's signature is stat_signature's; a folder or a missing path has none (ask stat_signature)."""
    p = tmp_path / "f.bin"
    p.write_bytes(b"x")
    ref, sig = hash_local_signed(p)
    assert ref.sha256 == hashlib.sha256(b"x").hexdigest() and sig == stat_signature(str(p)) is not None
    assert hash_local_signed(tmp_path)[1] is None and hash_local_signed(tmp_path / "nope")[1] is None


def test_gzip_sha256_leaves_out_the_time_stamp_alone(tmp_path: pathlib.Path, store) -> None:  # type: ignore[no-untyped-def]
    """Two gzip files of the same data written at other times differ in bytes 4-7 alone (the
    header's MTIME): their gzip_sha256 is the same; other data gives another; a file named .gz
    that is no gzip has none. A task's .gz output carries it (and no other output does)."""
    import gzip

    from reproflow.capture._files import gzip_sha256, sha256_file

    for sub in "abc":  # one name in three folders: gzip keeps the file's name in the header too
        (tmp_path / sub).mkdir()
    a, b, c, fake = (tmp_path / "a/t.gz", tmp_path / "b/t.gz", tmp_path / "c/t.gz", tmp_path / "fake.gz")
    with gzip.GzipFile(a, "wb", mtime=1_000_000) as fh:
        fh.write(b"same data\n" * 100)
    with gzip.GzipFile(b, "wb", mtime=2_000_000) as fh:
        fh.write(b"same data\n" * 100)
    with gzip.GzipFile(c, "wb", mtime=1_000_000) as fh:
        fh.write(b"other data\n" * 100)
    fake.write_bytes(b"plain text, not gzip")
    assert sha256_file(a)[0] != sha256_file(b)[0]
    assert gzip_sha256(str(a)) == gzip_sha256(str(b)) != gzip_sha256(str(c))
    assert gzip_sha256(str(fake)) is None

    import reproflow
    from reproflow import repro_task

    @repro_task
    def pack(dst: pathlib.Path, plain: pathlib.Path, stamp: int) -> None:
        with gzip.GzipFile(dst, "wb", mtime=stamp) as fh:  # as gzip.open does with the clock
            fh.write(b"rows\n")
        plain.write_text("rows\n")

    with reproflow.record("gz") as run:
        pack(tmp_path / "a/t.csv.gz", tmp_path / "a/t.csv", 1_000_000)
        pack(tmp_path / "b/t.csv.gz", tmp_path / "b/t.csv", 2_000_000)
    first, second = store.load_run(run.run_id).final_tasks()
    gz1 = [r for r in first.outputs if r.uri.endswith(".gz")][0]
    gz2 = [r for r in second.outputs if r.uri.endswith(".gz")][0]
    assert gz1.gzip_sha256 and gz1.gzip_sha256 == gz2.gzip_sha256 and gz1.sha256 != gz2.sha256
    assert [r.gzip_sha256 for r in first.outputs if not r.uri.endswith(".gz")] == [None]


def test_untimed_sha256_leaves_out_a_zip_archives_members_times_alone(tmp_path: pathlib.Path, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """zipfile's writestr, numpy's savez and pandas' .csv.zip stamp each member with the clock,
    make_archive with the file's mtime: two archives of the same members differ in those times
    alone, in each local header, in the central directory and in the extended-timestamp extra
    field Info-ZIP writes. Their untimed_sha256 is the same; another member's data, name or
    compression gives another; a file named .zip that is no zip has none. A task's .zip and .npz
    outputs carry it, and no other output does."""
    import struct
    import zipfile

    from reproflow.capture._files import sha256_file, untimed_sha256 as zip_sha256

    def archive(path: pathlib.Path, when: tuple[int, ...], data: bytes = b"a,b\n1,2\n", name: str = "t.csv",
                method: int = zipfile.ZIP_DEFLATED, stamp: int | None = None) -> pathlib.Path:
        with zipfile.ZipFile(path, "w") as zf:
            for member, body in ((name, data), ("notes.txt", b"same\n" * 50)):
                info = zipfile.ZipInfo(member, date_time=when)
                info.compress_type = method
                if stamp is not None:  # what Info-ZIP's zip adds: flags, then the mtime
                    info.extra = struct.pack("<HHBI", 0x5455, 5, 1, stamp)
                zf.writestr(info, body)
        return path

    a = archive(tmp_path / "a.zip", (2026, 12, 5, 10, 0, 0), stamp=1_700_000_000)
    b = archive(tmp_path / "b.zip", (2025, 1, 2, 3, 4, 6), stamp=1_800_000_000)
    assert sha256_file(a)[0] != sha256_file(b)[0]
    assert zip_sha256(str(a)) == zip_sha256(str(b)) is not None
    others = [archive(tmp_path / "c.zip", (2026, 12, 5, 10, 0, 0), data=b"a,b\n1,3\n", stamp=1_700_000_000),
              archive(tmp_path / "d.zip", (2026, 12, 5, 10, 0, 0), name="u.csv", stamp=1_700_000_000),
              archive(tmp_path / "e.zip", (2026, 12, 5, 10, 0, 0), method=zipfile.ZIP_STORED, stamp=1_700_000_000)]
    assert len({zip_sha256(str(a)), *(zip_sha256(str(p)) for p in others)}) == 4
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"plain text, not zip")
    assert zip_sha256(str(fake)) is None
    payload = os.urandom(3 << 20)  # stored: the central directory's times lie past the first chunk read
    big = [archive(tmp_path / f"big{i}.zip", when, data=payload, method=zipfile.ZIP_STORED) for i, when in
           enumerate([(2026, 1, 1, 0, 0, 0), (2027, 2, 2, 2, 2, 2)])]
    assert zip_sha256(str(big[0])) == zip_sha256(str(big[1])) and sha256_file(big[0])[0] != sha256_file(big[1])[0]

    import reproflow
    from reproflow import repro_task

    @repro_task
    def pack(dst: pathlib.Path, npz: pathlib.Path, plain: pathlib.Path, when: tuple[int, ...]) -> None:
        archive(dst, when)
        archive(npz, when)
        plain.write_text("rows\n")

    for sub in "ab":
        (tmp_path / sub).mkdir()
    with reproflow.record("zip") as run:
        pack(tmp_path / "a/t.csv.zip", tmp_path / "a/arrays.npz", tmp_path / "a/t.csv", (2026, 1, 1, 0, 0, 0))
        pack(tmp_path / "b/t.csv.zip", tmp_path / "b/arrays.npz", tmp_path / "b/t.csv", (2026, 6, 1, 12, 30, 10))
    first, second = store.load_run(run.run_id).final_tasks()
    for suffix in (".zip", ".npz"):
        z1 = [r for r in first.outputs if r.uri.endswith(suffix)][0]
        z2 = [r for r in second.outputs if r.uri.endswith(suffix)][0]
        assert z1.untimed_sha256 and z1.untimed_sha256 == z2.untimed_sha256 and z1.sha256 != z2.sha256
    assert [r.untimed_sha256 for r in first.outputs if r.uri.endswith(".csv")] == [None]
    monkeypatch.setattr("reproflow.recorder._attempt.UNTIMED_MAX", 100)  # larger files are not read twice
    with reproflow.record("zip-large") as run:
        pack(tmp_path / "a/t.csv.zip", tmp_path / "a/arrays.npz", tmp_path / "a/t.csv", (2026, 1, 1, 0, 0, 0))
    (large,) = store.load_run(run.run_id).final_tasks()
    assert [(r.size > 100, r.untimed_sha256) for r in large.outputs if r.uri.endswith(".zip")] == [(True, None)]


def test_untimed_sha256_of_a_pandas_csv_zip_leaves_out_the_clock(tmp_path: pathlib.Path) -> None:
    """pandas' ``to_csv("x.csv.zip")`` stamps the archive's member with the clock: the same
    frame saved two seconds apart (zip times have a resolution of 2 s) differs in bytes, not in
    untimed_sha256; other values differ in both. (numpy's savez writes no clock: the same
    arrays give the same bytes.)"""
    import pandas as pd

    from reproflow.capture._files import sha256_file, untimed_sha256

    saved = []
    for i, values in enumerate([[1.5, 2.5], [1.5, 2.5], [1.5, 3.5]]):
        path = tmp_path / str(i) / "t.csv.zip"  # one name: the member is named after the file
        path.parent.mkdir()
        pd.DataFrame({"x": values}).to_csv(path, index=False)
        saved.append(path)
        if i == 0:
            time.sleep(2.1)
    a, b, c = saved
    assert sha256_file(a)[0] != sha256_file(b)[0]
    assert untimed_sha256(str(a)) == untimed_sha256(str(b)) != untimed_sha256(str(c))


def test_untimed_sha256_of_a_matplotlib_figure_leaves_out_its_dates(tmp_path: pathlib.Path) -> None:
    """matplotlib writes the clock into a PDF's CreationDate and an SVG's dc:date: the same
    figure saved at two dates differs in bytes, not in untimed_sha256; another drawing differs
    in both; a PNG (no date) and a file named .pdf that is no PDF have none. (An SVG's ids are
    random unless ``svg.hashsalt`` is set: with them random, it differs in more than its date.)"""
    import datetime as dt

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from reproflow.capture._files import sha256_file, untimed_sha256

    def save(name: str, ys: list[float], when: dt.datetime) -> pathlib.Path:
        fig = Figure()
        fig.add_subplot().plot(ys)
        path = tmp_path / name
        meta = {"CreationDate": when} if name.endswith(".pdf") else {"Date": when.isoformat()}
        with matplotlib.rc_context({"svg.hashsalt": "fixed"}):
            fig.savefig(path, metadata=meta)
        return path

    early, late = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), dt.datetime(2026, 12, 5, 23, 59, 1, tzinfo=dt.timezone.utc)
    for suffix in (".pdf", ".svg"):
        a, b = save(f"a{suffix}", [1, 2, 3], early), save(f"b{suffix}", [1, 2, 3], late)
        c = save(f"c{suffix}", [1, 2, 4], early)
        assert sha256_file(a)[0] != sha256_file(b)[0]
        assert untimed_sha256(str(a)) == untimed_sha256(str(b)) is not None
        assert untimed_sha256(str(c)) != untimed_sha256(str(a))
    fig = Figure()
    fig.add_subplot().plot([1, 2])
    fig.savefig(tmp_path / "f.png")
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"/CreationDate (D:20200101) not a PDF")
    assert untimed_sha256(str(tmp_path / "f.png")) is None and untimed_sha256(str(fake)) is None

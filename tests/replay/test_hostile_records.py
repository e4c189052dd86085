"""A record is untrusted input (issue 11): a store can come from someone else. Hostile values in
every record field that reaches a path, a command line or an archive must be refused with one
clear line and a non-zero exit, never acted on: replay never writes outside its folders, never
deletes what it did not create, never hands the installer an option.

The property tests draw from HOSTILE (the kinds of value an attacker or a damaged store brings)
and put each into one field of an otherwise valid record, then plan (and, where the planner lets
it through, rebuild) the replay through the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hostile_fields import HOSTILE  # the kinds of hostile value the whole-record sweep draws from too
from replay_records import environment, local_dist, write_run

from reproflow import errors
from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.records import (
    DirectUrl,
    Distribution,
    GitState,
    Hardware,
    ProcessContext,
    RunRecord,
    SourceSnapshot,
)
from reproflow.replay import plan as plan_replay
from reproflow.replay._envbuild import env_key, pin_problem, plan_environment
from reproflow.replay._source import restore_source
from reproflow.store import Store



def _cli(args: list[str], capsys: pytest.CaptureFixture[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    code = run_cli(app, args)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_refusal(code: int, err: str) -> None:
    assert code != 0, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), err


def test_hostile_value_kinds_are_at_least_thirty() -> None:
    assert len(set(HOSTILE)) >= 30


@given(value=st.sampled_from(HOSTILE), field=st.sampled_from(["name", "version", "vcs_url", "vcs_commit"]))
@settings(max_examples=120, deadline=None)
def test_no_hostile_distribution_field_reaches_the_installer(value: str, field: str) -> None:
    """A distribution's name, version, VCS URL or commit that an installer could read as an
    option (or that is no name, version, URL or revision at all) is refused by the planner."""
    kw: dict[str, Any] = {"name": "pkg", "version": "1.0"}
    if field in ("name", "version"):
        kw[field] = value
    else:
        url = value if field == "vcs_url" else "https://example.org/x.git"
        commit = value if field == "vcs_commit" else "0123456789abcdef0123456789abcdef01234567"
        kw["direct_url"] = DirectUrl(url=url, vcs="git", commit_id=commit)
    plan = plan_environment(environment(Distribution(**kw)))
    for pin in plan.pins:  # whatever is let through is a plain requirement, never an option
        assert not pin.requirement.startswith("-")
        assert "\n" not in pin.requirement and "\x00" not in pin.requirement
        assert pin_problem(Distribution(**kw)) is None
    if plan.refused:
        assert not plan.pins


@given(value=st.sampled_from(HOSTILE))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_env_cache_folder_never_comes_from_the_record(value: str, store: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded environment_hash ('..' deleted the whole cache, spool included; '.' every
    cached environment) never names a folder: the env cache folder is a direct child of the cache
    root named by a hash of the validated pins."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(cache))
    run_id = write_run(store, source_files={"flow.py": b"x = 1\n"})
    rdir = Path(store.run_dir(run_id))
    rec = RunRecord.model_validate_json((rdir / "run.json").read_bytes())
    ctx = store.get_model_blob(rec.context, ProcessContext)
    ctx.environment_hash = value
    rec.context = store.put_model_blob(ctx)
    (rdir / "run.json").write_text(rec.model_dump_json())
    plan = plan_replay(run_id, store).plan
    if plan.env_cache:
        folder = Path(plan.env_cache)
        assert folder.parent.parent == cache and folder.name.startswith("env-") and len(folder.name) == 44, folder


def test_same_hash_with_another_package_list_gets_its_own_environment(store: Store) -> None:
    """A record from another store that claims a legitimate environment_hash with a changed
    package list must not share (and poison) that environment: the key is the content."""
    a = plan_environment(environment(Distribution(name="six", version="1.16.0")))
    b = plan_environment(environment(Distribution(name="six", version="1.16.0"), Distribution(name="evil", version="6.6.6")))
    assert env_key(a, "3.11.7") != env_key(b, "3.11.7")
    assert env_key(a, "3.11.7") == env_key(plan_environment(environment(Distribution(name="six", version="1.16.0"))), "3.11.7")


@pytest.mark.slow
def test_hostile_distribution_name_refused_before_anything_is_built(store: Store, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through `reproflow replay`: a distribution named like an installer option is a
    one-line refusal (exit 5); nothing is built, the cache (and a spool beside it) survive."""
    cache = tmp_path / "cache"
    (cache / "spool").mkdir(parents=True)
    (cache / "spool" / "unsynced.json").write_text("{}")
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(cache))
    env = environment(Distribution(name="--index-url=http://127.0.0.1:9/simple", version="1.0"))
    run_id = write_run(store, env=env, source_files={"flow.py": b"x = 1\n"})
    code, out, err = _cli(["replay", run_id, "--store", store.root], capsys, tmp_path, monkeypatch)
    _one_line_refusal(code, err)
    assert code == errors.UnsafeRecord.exit_code and "PEP 508" in err
    assert (cache / "spool" / "unsynced.json").exists()
    assert not any(p.name.startswith("env-") for p in (cache / "envs").glob("*")) if (cache / "envs").exists() else True


def test_archive_pin_must_hash_as_recorded(tmp_path: Path) -> None:
    """A file:// archive pin whose file no longer hashes as its recorded archive_hash is refused,
    not installed; one that matches is installed from that file."""
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    import hashlib

    good = "sha256=" + hashlib.sha256(wheel.read_bytes()).hexdigest()
    ok = plan_environment(environment(Distribution(name="pkg", version="1.0", direct_url=DirectUrl(
        url=f"file://{wheel}", archive_hash=good))))
    assert [p.kind for p in ok.pins] == ["archive"] and not ok.refused
    bad = plan_environment(environment(Distribution(name="pkg", version="1.0", direct_url=DirectUrl(
        url=f"file://{wheel}", archive_hash="sha256=" + "0" * 64))))
    assert bad.refused and "does not hash as recorded" in bad.refused[0]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def test_git_diff_making_a_link_out_of_the_restored_code_is_refused(store: Store, tmp_path: Path) -> None:
    """A stored git diff that creates a symbolic link pointing outside the restored code (the
    replayed flow would then write through it) is refused like such an archive member."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flow.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    commit = _git(repo, "rev-parse", "HEAD").strip()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), repo / "results")
    _git(repo, "add", "-A")
    diff = subprocess.run(["git", "diff", "--cached", "--binary"], cwd=repo, check=True, capture_output=True).stdout
    assert b"new file mode 120000" in diff
    ctx = ProcessContext(environment_blob="0" * 64, environment_hash="x", python_version="3.11", hardware=Hardware(),
                         source=SourceSnapshot(kind="none", absent_reason="not recorded"),
                         git=GitState(available=True, root=str(repo), commit=commit, dirty=True,
                                      diff_blob=store.put_blob(diff)))
    with pytest.raises(errors.UnsafeArchive, match="results"):
        restore_source(ctx, store, tmp_path / "restored")
    # an in-tree link is fine
    (repo / "results").unlink()
    os.symlink("flow.py", repo / "alias.py")
    _git(repo, "add", "-A")
    diff = subprocess.run(["git", "diff", "--cached", "--binary"], cwd=repo, check=True, capture_output=True).stdout
    ctx.git.diff_blob = store.put_blob(diff)
    shutil.rmtree(tmp_path / "restored")
    restored = restore_source(ctx, store, tmp_path / "restored")
    assert (restored.root / "alias.py").is_symlink() and restored.how.endswith("+ diff")


@pytest.mark.parametrize("digest", ["../../../../etc/passwd", "..", "ab", "0" * 63 + "/", "A" * 64])
def test_blob_digest_from_a_record_never_becomes_a_path(store: Store, digest: str) -> None:
    with pytest.raises(errors.UnsafeRecord):
        store.get_blob(digest)


def test_run_json_naming_another_run_is_refused(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A run.json copied into another run's folder is not shown as that run; `runs list` still
    lists the good runs, warns about the bad one in one line, and exits 0."""
    good = write_run(store, source_files={"flow.py": b"x = 1\n"})
    other = write_run(store, source_files={"flow.py": b"x = 2\n"})
    rdir = Path(store.run_dir(other))
    (rdir / "run.json").write_bytes((Path(store.run_dir(good)) / "run.json").read_bytes())
    shutil.rmtree(Path(store.root) / "index", ignore_errors=True)
    code, out, err = _cli(["runs", "show", other, "--store", store.root], capsys, tmp_path, monkeypatch)
    _one_line_refusal(code, err)
    assert "names run" in err
    code, out, err = _cli(["runs", "list", "--json", "--store", store.root], capsys, tmp_path, monkeypatch)
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == [good]
    assert "warning:" in err and other in err and "Traceback" not in err


def test_one_corrupt_record_does_not_hide_the_other_runs(store: Store, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    good = write_run(store, source_files={"flow.py": b"x = 1\n"})
    bad = write_run(store, source_files={"flow.py": b"x = 2\n"})
    (Path(store.run_dir(bad)) / "run.json").write_text("{not json")
    shutil.rmtree(Path(store.root) / "index", ignore_errors=True)
    code, out, err = _cli(["runs", "list", "--json", "--store", store.root], capsys, tmp_path, monkeypatch)
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == [good]
    assert "corrupt record" in err and bad in err
    code, out, err = _cli(["runs", "list", "--store", store.root], capsys, tmp_path, monkeypatch)
    assert code == 0 and good[:4] in out


def test_any_unique_prefix_resolves(store: Store) -> None:
    """The docs say any unique prefix works: also under 4 characters."""
    run_id = write_run(store, source_files={"flow.py": b"x = 1\n"})
    assert store.resolve_run_id(run_id[:1]) == run_id
    assert store.resolve_run_id(run_id[:3]) == run_id


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to drop to another user")
def test_permission_denied_is_not_reported_as_no_store(store: Store, tmp_path: Path) -> None:
    """A store this user may not read says so (exit 3), instead of 'no reproflow store'."""
    write_run(store, source_files={"flow.py": b"x = 1\n"})
    os.chmod(store.root, 0o700)
    os.chmod(tmp_path, 0o755)
    reproflow = str(Path(sys.executable).parent / "reproflow")
    import stat

    for part in [*Path(reproflow).parents, Path(sys.base_prefix)]:
        if not os.stat(part).st_mode & stat.S_IXOTH:  # e.g. a checkout under `mktemp -d` (mode 0700)
            pytest.skip(f"another user cannot reach this checkout's interpreter ({part} is not searchable by others)")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", reproflow,
                           "runs", "list", "--store", store.root],
                          capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)}, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "PermissionError" in proc.stderr and "no reproflow store" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plan_says_which_pins_run_build_code(store: Store) -> None:
    """Pins that run code when built (local sources, VCS) are named in the plan's risks."""
    env = environment(local_dist(store, "mylocal", "0.1", {"pyproject.toml": b"[project]\nname='mylocal'\n"}))
    run_id = write_run(store, env=env, source_files={"flow.py": b"x = 1\n"})
    plan = plan_replay(run_id, store).plan
    assert any("build scripts" in r and "mylocal" in r for r in plan.risks), plan.risks


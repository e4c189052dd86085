"""CRESP: export in the documented TOML 1.0 layout; import of all three dialects."""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import pytest
import tomli

try:
    import tomllib  # TOML 1.0 only (3.11+)
except ImportError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.errors import ExportError, InputChanged
from reproflow.export import export_run
from reproflow.export._cresp import import_cresp


def test_cresp_export_layout(recorded: dict[str, Any]) -> None:
    """Top-level cresp_version, experiment_name and random_seed come before any table; the
    documented tables are there; packages are an array of tables; data carries sha256."""
    text = export_run(recorded["store"], recorded["run_id"], "cresp")
    assert isinstance(text, str)
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    first_table = next(i for i, ln in enumerate(body) if ln.startswith("["))
    top = "\n".join(body[:first_table])
    for key in ("cresp_version", "experiment_name", "random_seed"):
        assert f"\n{key} = " in "\n" + top
    assert "[[software.packages]]" in text and "[[data]]" in text
    doc = (tomllib or tomli).loads(text)  # a TOML 1.0 parser where there is one
    assert doc["cresp_version"] == "1.0" and doc["random_seed"] == 42 and doc["experiment_name"] == "demo-flow"
    assert set(doc) >= {"hardware", "software", "pyproject", "data", "execution", "version"}
    names = [p["name"] for p in doc["software"]["packages"]]
    assert names[0] == "Python" and {"six", "idna", "packaging"} <= set(names)
    raw = recorded["data"] / "raw.csv"
    assert doc["data"] == [{"name": "raw.csv", "source": str(raw),
                            "sha256": hashlib.sha256(raw.read_bytes()).hexdigest(), "size_bytes": raw.stat().st_size}]  # fmt: skip
    assert doc["execution"]["command"] == "python flows/demo.py"
    assert doc["version"] == {"commit": "a" * 40, "repo": "https://github.com/example/project.git",
                              "branch": "main", "dirty": False}  # fmt: skip


def test_cresp_round_trip(recorded: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """Exported cresp.toml imports back as the docs dialect with the same packages and data, and
    its data check passes until the file changes."""
    path = tmp_path / "cresp.toml"
    export_run(recorded["store"], recorded["run_id"], "cresp", out=path)
    imp = import_cresp(path)
    assert imp.dialect == "docs" and imp.random_seed == 42 and imp.commit == "a" * 40
    assert {"six", "idna", "packaging"} <= {p.name for p in imp.packages}
    assert [c.status for c in imp.check_data()] == ["ok"]
    (recorded["data"] / "raw.csv").write_text("a,b\n1,3\n")
    assert [c.status for c in imp.check_data()] == ["changed"]
    req = imp.requirements()
    assert "six==" in req and "Python" not in req.split("\n", 2)[-1]


TEMPLATE = '''\
cresp_version = "1.0"
repo_url = "https://github.com/lab/exp"

[experiment]
name = "Soil moisture model"
description = "Fits a model"

[experiment.environment.hardware]
cpu = { model = "AMD EPYC", architecture = "x86_64", cores = 64, threads = 128, frequency = "", instructions_set = [] }

[experiment.environment.system]
os = { name = "Ubuntu", version = "22.04", kernel = "", architecture = "", locale = "", timezone = "" }
packages = []

[experiment.environment.software]
conda = {
    version = "24.1",
    channels = ["conda-forge"],
    packages = [
        { name = "numpy", version = "1.26.4", build = "", channel = "conda-forge" }
    ]
}

python = {
    version = "3.11",
    pip_config = {
        index_url = "https://pypi.org/simple",
        extra_index_url = []
    }
}

[experiment.environment.dependencies]
type = "python"
package_manager = { type = "poetry", config_file = "pyproject.toml", lock_file = "poetry.lock" }

[[datasets]]
name = "obs"
source = "data/obs.csv"
sha256 = "SHA"
size_bytes = 5

[execution]
verify_script = "verify_env.py"
main_command = "python main.py"

[reproduction]
description = "x"
'''

YAML = """\
version: '1.0'
metadata:
  title: MNIST Classification
  description: example
environment:
  manager: pixi
  file: pixi.toml
stages:
- id: train_model
  outputs:
  - path: outputs/model.pt
    hash: 2fdc73104d44b8782c270fac12faa64483b9d39c29d9464b2d9f47e55cea6183
    hash_method: sha256
reproduction:
  random_seed: 42
"""


def test_import_template_dialect_needs_toml_1_1(tmp_path: pathlib.Path) -> None:
    """The cookiecutter template's multi-line inline tables (TOML 1.1) parse, and its experiment,
    Python, conda packages, datasets and command map onto the import."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "obs.csv").write_bytes(b"1,2\n\n")
    sha = hashlib.sha256(b"1,2\n\n").hexdigest()
    path = tmp_path / "cresp.toml"
    path.write_text(TEMPLATE.replace("SHA", sha))
    if tomllib is not None:
        with pytest.raises(tomllib.TOMLDecodeError):
            tomllib.loads(path.read_text())  # a TOML 1.0 parser refuses it
    assert tomli.loads(path.read_text())  # tomli >= 2.4 reads TOML 1.1
    imp = import_cresp(path)
    assert imp.dialect == "template"
    assert (imp.experiment_name, imp.python_version, imp.os, imp.command) == (
        "Soil moisture model", "3.11", "Ubuntu 22.04", "python main.py")
    assert imp.repo == "https://github.com/lab/exp" and imp.environment_file == "poetry.lock"
    assert [(p.name, p.version, p.source) for p in imp.packages] == [("numpy", "1.26.4", "conda")]
    assert [c.status for c in imp.check_data()] == ["ok"]
    assert imp.hardware["cpu"]["cores"] == 64


def test_import_yaml_dialect(tmp_path: pathlib.Path) -> None:
    """cresp.yaml: title, seed, environment file and stage outputs with their sha256."""
    path = tmp_path / "cresp.yaml"
    path.write_text(YAML)
    imp = import_cresp(path)
    assert imp.dialect == "yaml" and imp.experiment_name == "MNIST Classification" and imp.random_seed == 42
    assert imp.environment_file == "pixi.toml"
    assert [(d.source, d.sha256[:8]) for d in imp.data] == [("outputs/model.pt", "2fdc7310")]  # type: ignore[index]
    assert [c.status for c in imp.check_data()] == ["missing"]


def test_import_rejects_non_cresp_and_broken_files(tmp_path: pathlib.Path) -> None:
    """Not CRESP, not TOML, or missing: an ExportError naming the file."""
    other = tmp_path / "other.toml"
    other.write_text('title = "x"\n')
    with pytest.raises(ExportError, match="not a CRESP description"):
        import_cresp(other)
    broken = tmp_path / "broken.toml"
    broken.write_text("cresp_version = \n")
    with pytest.raises(ExportError, match="cannot parse"):
        import_cresp(broken)
    with pytest.raises(ExportError, match="cannot read"):
        import_cresp(tmp_path / "absent.toml")


def test_import_cresp_cli(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow import-cresp --json --check-data -r FILE` prints the import with data checks,
    writes requirements, and exits with InputChanged's code when a data file is missing; a bad file is one error line."""
    path = tmp_path / "cresp.yaml"
    path.write_text(YAML)
    req = tmp_path / "req.txt"
    code = run_cli(app, ["import-cresp", str(path), "--json", "--check-data", "-r", str(req)])
    out = json.loads(capsys.readouterr().out)
    assert code == InputChanged.exit_code and out["data_checks"][0]["status"] == "missing" and req.exists()
    code = run_cli(app, ["import-cresp", str(tmp_path / "nope.toml")])
    err = capsys.readouterr().err
    assert code == ExportError.exit_code and err.count("\n") == 1 and "cannot read" in err


def test_cresp_data_inside_the_code_is_relative(store: Any) -> None:
    """A data file inside the recorded source root is written relative to it (as CRESP's data
    check reads it, next to cresp.toml at the repository root); one elsewhere stays absolute."""
    from rf_factory import T0, make_run

    from reproflow.records import DataRef, TaskRecord

    refs = [DataRef(uri="/src/project/data/in.csv", sha256="a" * 64, size=3),
            DataRef(uri="/mnt/shared/big.parquet", sha256="b" * 64, size=9)]  # fmt: skip
    rid = "run-cresp-data"
    task = TaskRecord(run_id=rid, task_run_id="t", task_name="load", task_key="k", state="COMPLETED", started_at=T0,
                      ended_at=T0, duration_s=0, parameters_hash="p", inputs=refs)  # fmt: skip
    make_run(store, run_id=rid, tasks=[task])
    doc = tomli.loads(str(export_run(store, rid, "cresp")))
    assert [d["source"] for d in doc["data"]] == ["data/in.csv", "/mnt/shared/big.parquet"]


# The layout of the protocol documentation's full example (cresp-format.md): author, email and
# date at the top, [pyproject] with its own tables, [rproject] and [matproject], `random_seed`
# written after [matproject] (so TOML puts it in that table), [virtualization] tables, and
# `project_url` written last, after [virtualization.auto_scaling].
PROTOCOL = '''\
cresp_version = "1.0"
author = "Ada Researcher"
email = "ada@lab.example"
date = "2026-02-01"

experiment_name = "Leaf classifier"
description = "Trains a small CNN"

[hardware]
CPU = "AMD EPYC, 32 cores"
RAM = "64GB"

[software]
os = "Debian 12"

[software.conda]
environment_file = "environment.yml"
channels = ["conda-forge"]

[[software.packages]]
name = "Python"
version = "3.11.7"
source = "pip"

[pyproject]
file = "pyproject.toml"

[pyproject.build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[rproject]
file = "DESCRIPTION"
name = "r-leaf"

[matproject]
file = "matproject.json"
name = "mat-leaf"

random_seed = 777

[[data]]
name = "leaves"
source = "data/leaves.csv"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[execution]
verify_script = "verify_env.py"
command = "python train.py --epochs 3"

[version]
repo = "https://github.com/lab/leaf.git"
commit = "0123456789abcdef0123456789abcdef01234567"

[virtualization]
vm_image = "debian-12.img"

[virtualization.resources]
cpu = "8"

[virtualization.auto_scaling]
enable = true

project_url = "https://github.com/lab/leaf"
'''


def _leaves(d: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in d.items():
        out |= _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def test_import_keeps_what_the_protocol_example_says(tmp_path: pathlib.Path) -> None:
    """The protocol's own layout imports without loss: the seed written after [matproject] and
    the project URL written after [virtualization.auto_scaling] are read where TOML puts them;
    authors, date, [software.conda] and [pyproject] are kept; whatever has no field
    ([rproject], [matproject], [virtualization], conda channels) is listed as unmapped with its
    value, so every key of the file is accounted for."""
    path = tmp_path / "cresp.toml"
    path.write_text(PROTOCOL)
    imp = import_cresp(path)
    assert imp.random_seed == 777
    assert imp.project_url == "https://github.com/lab/leaf"
    assert imp.authors == ["Ada Researcher <ada@lab.example>"] and imp.date == "2026-02-01"
    assert imp.environment_file == "environment.yml"
    assert imp.pyproject == {"file": "pyproject.toml", "build-system": {"requires": ["hatchling"],
                                                                       "build-backend": "hatchling.build"}}  # fmt: skip
    assert imp.command == "python train.py --epochs 3" and imp.commit and imp.repo
    # a table none of which is read is listed whole, with its value
    assert {"rproject", "matproject.file", "matproject.name", "software.conda.channels", "virtualization.vm_image",
            "virtualization.resources", "virtualization.auto_scaling.enable"} == set(imp.unmapped)  # fmt: skip
    assert imp.other["software.conda.channels"] == ["conda-forge"]
    assert imp.other["rproject"] == {"file": "DESCRIPTION", "name": "r-leaf"}
    mapped = {"cresp_version", "author", "email", "date", "experiment_name", "description", "hardware.CPU",
              "hardware.RAM", "software.os", "software.conda.environment_file", "software.packages",
              "pyproject.file", "pyproject.build-system.requires", "pyproject.build-system.build-backend",
              "matproject.random_seed", "data", "execution.verify_script", "execution.command", "version.repo",
              "version.commit", "virtualization.auto_scaling.project_url"}  # fmt: skip
    unmapped = {leaf for leaf in _leaves(tomli.loads(PROTOCOL)) if any(leaf == u or leaf.startswith(u + ".") for u in imp.unmapped)}
    assert _leaves(tomli.loads(PROTOCOL)) == mapped | unmapped and not mapped & unmapped


def test_import_template_lists_what_it_does_not_map(tmp_path: pathlib.Path) -> None:
    """The template dialect's keys without a field (conda version and channels, pip_config,
    the dependency type, reproduction.description) are listed, not dropped."""
    path = tmp_path / "cresp.toml"
    path.write_text(TEMPLATE.replace("SHA", "0" * 64))
    imp = import_cresp(path)
    assert {"experiment.environment.software.conda.version", "experiment.environment.software.conda.channels",
            "experiment.environment.software.python.pip_config", "experiment.environment.dependencies.type",
            "reproduction.description"} <= set(imp.unmapped)  # fmt: skip
    assert imp.other["experiment.environment.software.conda.channels"] == ["conda-forge"]


def test_exported_folder_input_checks_ok(store: Any, tmp_path: pathlib.Path) -> None:
    """A folder the run read is exported with its tree hash, and `import-cresp --check-data`
    hashes it the same way: "ok", then "changed" when a file in it changes (it said "missing")."""
    from rf_factory import T0, make_run

    from reproflow.capture._files import hash_local
    from reproflow.records import TaskRecord

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.csv").write_text("1\n")
    (shards / "b.csv").write_text("2\n")
    ref = hash_local(shards)
    assert ref.kind == "directory"
    rid = "run-cresp-folder"
    task = TaskRecord(run_id=rid, task_run_id="t", task_name="load", task_key="k", state="COMPLETED", started_at=T0,
                      ended_at=T0, duration_s=0, parameters_hash="p", inputs=[ref])  # fmt: skip
    make_run(store, run_id=rid, tasks=[task])
    out = tmp_path / "cresp.toml"
    export_run(store, rid, "cresp", out=out)
    imp = import_cresp(out)
    assert [c.status for c in imp.check_data()] == ["ok"]
    assert run_cli(app, ["import-cresp", str(out), "--check-data"]) == 0
    (shards / "b.csv").write_text("3\n")
    assert [c.status for c in imp.check_data()] == ["changed"]


def test_exported_command_is_what_was_run(store: Any) -> None:
    """[execution] command is the recorded command line (script and arguments, from the
    repository root), not the file the flow function lives in."""
    from rf_factory import make_run

    rid = make_run(store, entrypoint="flows/demo.py:demo_flow", argv=["/src/project/scripts/run_all.py", "--fast", "a b"])
    doc = tomli.loads(str(export_run(store, rid, "cresp")))
    assert doc["execution"]["command"] == "python scripts/run_all.py --fast 'a b'"
    rid = make_run(store, argv=["run.py", "-n", "2"], cwd="/src/project/jobs")
    doc = tomli.loads(str(export_run(store, rid, "cresp")))
    assert doc["execution"]["command"] == "cd jobs && python run.py -n 2"
    rid = make_run(store, entrypoint="pipeline/main.py:flow", module="pipeline.main:flow", main_module="pipeline.main",
                   argv=["/src/project/pipeline/main.py", "3"])  # ran as `python -m pipeline.main 3`
    assert tomli.loads(str(export_run(store, rid, "cresp")))["execution"]["command"] == "python -m pipeline.main 3"
    rid = make_run(store, argv=["-c"])  # nothing reusable: the flow's file
    assert tomli.loads(str(export_run(store, rid, "cresp")))["execution"]["command"] == "python flows/demo.py"


@pytest.mark.parametrize("hashed", [["rf-alpha"], ["rf-alpha", "rf-beta"]])
def test_import_requirements_install_with_pip(tmp_path: pathlib.Path, hashed: list[str]) -> None:
    """`import-cresp --requirements` writes a file real pip accepts: every line hashed when every
    package has a hash, none when only some do (pip refuses a mix), and pip downloads exactly the
    pinned wheels from a local index built here."""
    import subprocess
    import sys

    from rf_factory import build_index

    url, hashes = build_index(tmp_path / "index", {"rf-alpha": ["1.0", "1.1"], "rf-beta": ["2.0"]})
    wheel = {"rf-alpha": "rf_alpha-1.0-py3-none-any.whl", "rf-beta": "rf_beta-2.0-py3-none-any.whl"}
    body = "".join(
        f'\n[[software.packages]]\nname = "{n}"\nversion = "{v}"\nsource = "pip"\n'
        + (f'hash = "{hashes[wheel[n]]}"\n' if n in hashed else "")
        for n, v in (("rf-alpha", "1.0"), ("rf-beta", "2.0"))
    )
    path = tmp_path / "cresp.toml"
    path.write_text('cresp_version = "1.0"\nexperiment_name = "x"\n\n[software]\nos = "Linux"\n' + body)
    req = tmp_path / "requirements.txt"
    assert run_cli(app, ["import-cresp", str(path), "-r", str(req)]) == 0
    lines = [ln for ln in req.read_text().splitlines() if ln and not ln.startswith("#")]
    assert all(("--hash=" in ln) == (len(hashed) == 2) for ln in lines), lines
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "--no-deps", "--index-url", url,
                           "-r", str(req), "-d", str(tmp_path / "dl")], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == sorted(wheel.values())

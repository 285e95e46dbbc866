"""The built wheel holds every module and data file, and its console script works from elsewhere.

A hand-kept package list once left harness.executors out of the wheel, so `sweep` failed when the
project was installed from it while every test of the source tree passed. Here the wheel is built
from a copy of the tree, installed with --no-deps into a fresh venv that sees this environment's
dependencies (a .pth path entry: no download, and the editable install of the project, a .pth
hook that path entries do not run, stays invisible), and `lalm-bench` runs from a temp folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, run_record_path

pytestmark = pytest.mark.slow

PACKAGES = ("harness", "candidates", "leaderboard", "records")
# Not built from: hidden entries (.git, venvs, caches) and outputs at the top; caches anywhere.
TOP_LEVEL_SKIP = {"results", "report", "build", "dist"}
ANYWHERE_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _ignore(folder: str, names: list[str]) -> set[str]:
    skip = set(ANYWHERE_SKIP(folder, names))
    if Path(folder) == REPO:
        skip |= {n for n in names if n.startswith(".") or n in TOP_LEVEL_SKIP}
    return skip


def _check(proc: subprocess.CompletedProcess, what: str) -> str:
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc.stdout


def _site_dirs() -> list[str]:
    """This interpreter's site-packages folders: where the project's dependencies are installed."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return list(dict.fromkeys(d for d in dirs if Path(d).is_dir()))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(source copy, wheel): built from a copy, since setuptools leaves build/ beside its sources and
    would put a stale build/lib (a module since moved or deleted) into the next wheel."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not importable in this environment: the wheel cannot be built or installed")
    source = tmp_path_factory.mktemp("wheel_src") / "lalm-bench"
    shutil.copytree(REPO, source, ignore=_ignore)
    dist = tmp_path_factory.mktemp("wheel_dist")
    # --no-build-isolation: no download of setuptools (one is installed here: torch needs it).
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    _check(subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(dist), str(source)],
                          capture_output=True, text=True, timeout=300), "pip wheel")
    (wheel,) = dist.glob("lalm_bench-*.whl")
    return source, wheel


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    """A fresh venv with the wheel installed; returns (venv folder, its environment for subprocesses)."""
    _, wheel = built
    root = tmp_path_factory.mktemp("wheel_venv") / "venv"
    try:
        import venv as venv_module

        venv_module.EnvBuilder(with_pip=False, symlinks=True).create(root)
    except Exception as err:  # any failure here: venv is unusable on this machine
        pytest.skip(f"cannot create a venv here ({type(err).__name__}: {err})")
    python = root / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(VIRTUAL_ENV=str(root), PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}", PYTHONNOUSERSITE="1")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, env=env, timeout=60)
    purelib = Path(_check(purelib, "venv python").strip())
    (purelib / "_lalm_bench_test_deps.pth").write_text("".join(f"{d}\n" for d in _site_dirs()))
    workdir = tmp_path_factory.mktemp("wheel_cwd")  # not the repo: `import harness` must not find the sources

    # The dependencies are visible, the project (its editable install included) is not, until the wheel is in.
    _check(subprocess.run([str(python), "-c", "import click, numpy"], capture_output=True, text=True,
                          env=env, cwd=workdir, timeout=120), "the dependencies through the .pth entry")
    for module in ("harness", "bench", "candidates", "leaderboard"):
        proc = subprocess.run([str(python), "-c", f"import {module}; print({module}.__spec__)"],
                              capture_output=True, text=True, env=env, cwd=workdir, timeout=60)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, (
            f"`import {module}` works in the fresh venv before the wheel is installed, so the test would not "
            f"check the wheel:\n{proc.stdout}{proc.stderr}")

    # --ignore-installed: this environment's lalm-bench (editable) is on the .pth path; neither skip the
    # install because of it nor try to uninstall it.
    _check(subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--ignore-installed", "--no-index", str(wheel)],
                          capture_output=True, text=True, env=env, cwd=workdir, timeout=300), "pip install the wheel")
    return root, env, workdir


def test_wheel_holds_every_module_and_data_file(built):
    source, wheel = built
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = ["bench.py"]
    for package in PACKAGES:
        for path in sorted((source / package).rglob("*")):
            if path.is_file() and not path.name.startswith(".") and "__pycache__" not in path.parts:
                expected.append(path.relative_to(source).as_posix())
    assert any(e.startswith("harness/sweep/executors/") for e in expected) and any(e.endswith(".flac") for e in expected)
    missing = [e for e in expected if e not in names]
    assert not missing, (f"{len(missing)} file(s) of the source tree are not in {wheel.name} (a package left out of "
                         f"[tool.setuptools.packages.find], or data without a glob in package-data): {missing}")
    stray = sorted(n for n in names if n.split("/")[0] in ("tests", "examples", "scripts", "docs"))
    assert not stray, f"the wheel holds files that are not the project's: {stray}"


def test_installed_console_script_runs_from_another_folder(venv, tmp_path):
    root, env, workdir = venv
    python = root / "bin" / "python"
    bin_script = root / "bin" / "lalm-bench"
    assert bin_script.is_file(), f"no console script lalm-bench in {bin_script.parent}"

    where = _check(subprocess.run(
        [str(python), "-c", "import json, bench, harness, harness.sweep.executors, candidates, leaderboard; "
         "print(json.dumps({'harness': list(harness.__path__), 'files': [bench.__file__, harness.sweep.executors.__file__, "
         "candidates.__file__, leaderboard.__file__]}))"],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=120), "import the installed packages")
    where = json.loads(where)
    assert len(where["harness"]) == 1, f"harness is imported from several folders: {where['harness']}"
    outside = [f for f in where["harness"] + where["files"] if not Path(f).resolve().is_relative_to(root.resolve())]
    assert not outside, f"imported from outside the new venv {root}: {outside}"

    results = tmp_path / "R"
    cli = [str(bin_script)]
    out = _check(subprocess.run([*cli, "run", "-c", "null", "--limit", "2", "--warmup", "0", "--results", str(results)],
                                capture_output=True, text=True, env=env, cwd=workdir, timeout=300), "lalm-bench run")
    record_path = run_record_path(out)
    assert record_path.name == "run.json" and record_path.is_file()
    assert json.loads(record_path.read_text())["status"] == "ok"

    # The README's Sweep example (examples/sweep.toml), copied: paths in it are relative to the file.
    shutil.copy(REPO / "examples" / "sweep.toml", workdir / "sweep.toml")
    out = _check(subprocess.run([*cli, "sweep", "--dry-run", "sweep.toml", "--results", str(tmp_path / "sweep-R")],
                                capture_output=True, text=True, env=env, cwd=workdir, timeout=300),
                 "lalm-bench sweep --dry-run")
    assert "4 cell(s)" in out, out

    out = _check(subprocess.run([*cli, "leaderboard", "--results", str(results)],
                                capture_output=True, text=True, env=env, cwd=workdir, timeout=300),
                 "lalm-bench leaderboard")
    assert "null" in out, out

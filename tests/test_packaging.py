"""The built wheel: what it carries (catalog snapshots, migrations, configs, license), what it declares, and that
the installed package finds its data from outside the source tree."""
from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the tracked files (the build writes build/ and *.egg-info beside them)."""
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("gpubroker-*.whl")
    return whl


def _names(whl: Path) -> set[str]:
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist())


def test_wheel_carries_every_file_read_at_run_time(wheel):
    names = _names(wheel)
    for folder, pattern in (("adapters/snapshots", "*"), ("cluster/migrations", "*.sql"), ("cluster/deploy", "*"),
                            ("cluster/deploy/node", "*"), ("cluster/observability", "*")):
        expected = {p.relative_to(REPO).as_posix() for p in (REPO / folder).glob(pattern) if p.is_file()}
        assert expected and expected <= names, (folder, sorted(expected - names))
    assert {"adapters/snapshots/MANIFEST.json", "adapters/snapshots/gcp_catalog.csv.gz",
            "cluster/migrations/0001_init.sql"} <= names
    docs = {p.relative_to(REPO).as_posix() for top in ("gateway", "deployments") for p in (REPO / top).rglob("*.md")}
    assert any(d.endswith("PROTOCOL.md") for d in docs) and docs <= names, sorted(docs - names)
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_wheel_metadata_license_and_dependencies(wheel):
    names = _names(wheel)
    (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    with zipfile.ZipFile(wheel) as z:
        meta = email.message_from_bytes(z.read(meta_name))
        license_files = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert license_files and b"Apache License" in z.read(license_files[0])
    assert meta["License-Expression"] == "Apache-2.0"
    requires = {r.split(";")[0].strip() for r in meta.get_all("Requires-Dist")}
    base = {r for r in requires if "extra ==" not in r}
    for dep in ("pandas>=2.3,<3", "websockets<18,>=16", "numpy<3,>=2.4", "fastapi<1,>=0.165"):
        name = dep.split("<")[0].split(">")[0]
        assert any(r.replace(" ", "").startswith(name) for r in requires), dep
    assert any(r.startswith("websockets") and ">=16" in r for r in base), base
    assert any(r.startswith("pandas") for r in base)
    entry = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as z:
        assert "gpubroker = deployments.cli:main" in z.read(entry[0]).decode()


def test_installed_package_loads_the_catalog_and_lists_migrations_outside_the_repo(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    script = (
        "import adapters.base, cluster.db, json\n"
        "from adapters import registry\n"
        "n = sum(len(registry.build(p).parse(registry.build(p).load_snapshot()).offers) for p in registry.names())\n"
        "import importlib.resources as r\n"
        "migs = sorted(e.name for e in r.files('cluster.migrations').iterdir() if e.name.endswith('.sql'))\n"
        "print(json.dumps({'offers': n, 'migrations': migs, 'snapshots': str(adapters.base.SNAPSHOT_DIR),\n"
        "                  'db': cluster.db.__file__}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    import json

    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["snapshots"].startswith(str(target)) and out["db"].startswith(str(target))
    assert out["offers"] > 3000
    assert out["migrations"] == sorted(p.name for p in (REPO / "cluster" / "migrations").glob("*.sql"))
    version = subprocess.run([sys.executable, "-c", "import sys; from deployments.cli import main; sys.exit(main())",
                              "--version"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("gpubroker 0.1.0"), (version.stdout, version.stderr)

"""The dependency lock ``requirements/lock.txt``: in step with pyproject.toml, hashed, covering
every supported Python, and what ``make install`` installs (``make lock`` re-resolves it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from crm_helpers import envlock

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / envlock.LOCK_FILE

#: Environments the lock must cover: the README's Python 3.11+ on Linux, macOS and Windows.
PYTHONS = ["3.11.9", "3.12.8", "3.13.1"]
PLATFORMS = [
    {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"},
    {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"},
    {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"},
]


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def _env(python: str, platform: dict[str, str]) -> dict[str, str]:
    return {
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        **platform,
    }


def _pins_for(env: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, version, marker in envlock.pinned(LOCK):
        if marker is None or Marker(marker).evaluate(env):
            out.setdefault(name, []).append(version)
    return out


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_is_in_step_with_pyproject():
    assert envlock.check() is None
    assert envlock.recorded_deps_sha256(LOCK) == envlock.pyproject_deps_sha256()
    head = LOCK.read_text().split("\n", 6)[:6]
    assert "#    make lock" in head and any(x.startswith("# locker: uv ") for x in head)


@pytest.mark.parametrize("python", PYTHONS)
def test_every_dependency_is_pinned_once_for_every_supported_python(python):
    reqs = _requirements()
    # the extras of a dependency (ibis-framework[duckdb, pyspark, postgres]) bring packages of
    # their own: the installed metadata (the locked version) names them
    for req in list(reqs):
        for extra in req.extras:
            for dep in metadata.requires(req.name) or []:
                sub = Requirement(dep)
                if sub.marker is not None and sub.marker.evaluate({"extra": extra}):
                    reqs.append(Requirement(str(sub).split(";")[0]))
    assert any(_name(r.name) == "import-linter" for r in reqs)
    for platform in PLATFORMS:
        env = _env(python, platform)
        pins = _pins_for(env)
        assert all(len(v) == 1 for v in pins.values()), {
            k: v for k, v in pins.items() if len(v) > 1
        }
        for req in reqs:
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            got = pins.get(_name(req.name))
            assert got, f"{req.name} is not in the lock for Python {python} on {platform}"
            assert req.specifier.contains(got[0], prereleases=True), (req, got)


def test_the_known_breakages_stay_pinned_out():
    pins = _pins_for(_env("3.11.9", PLATFORMS[0]))
    assert SpecifierSet("<30").contains(pins["sqlglot"][0])  # sqlglot 30 breaks ibis 12
    assert pins["ibis-framework"][0].startswith("12.")


def test_every_pin_carries_its_hashes():
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    pins = [b for b in blocks if re.match(r"[A-Za-z0-9][^\n]*==", b)]
    assert len(pins) == len(envlock.pinned(LOCK)) > 100
    for block in pins:
        hashes = re.findall(r"--hash=sha256:([0-9a-f]+)", block)
        assert hashes and all(len(h) == 64 for h in hashes), block.splitlines()[0]


def test_the_header_hash_follows_the_dependencies_and_nothing_else(tmp_path):
    text = (ROOT / "pyproject.toml").read_text()
    shutil.copy(LOCK, tmp_path / "lock.txt")
    pyproject = tmp_path / "pyproject.toml"

    def check(new_text: str) -> str | None:
        pyproject.write_text(new_text)
        return envlock.check(pyproject, tmp_path / "lock.txt")

    assert check(text) is None
    assert check(text.replace("line-length = 100", "line-length = 99")) is None
    deps = tomllib.loads(text)["project"]["dependencies"]
    swapped = text.replace(f'"{deps[0]}"', "@@").replace(f'"{deps[1]}"', f'"{deps[0]}"')
    assert check(swapped.replace("@@", f'"{deps[1]}"')) is None  # order does not matter
    problem = check(text.replace('"tqdm>=4.66",', '"tqdm>=4.66",\n    "rich>=13",'))
    assert problem and "make lock" in problem and "out of step" in problem
    assert check(text.replace('"pytest>=8"', '"pytest>=9"')) is not None  # an extra
    assert check(text.replace('requires-python = ">=3.11"', 'requires-python = ">=3.12"'))
    assert "missing" in envlock.check(pyproject, tmp_path / "absent.txt")


def test_stamp_writes_one_header_after_the_tools_comment(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# made by a tool\n#    make lock\nsix==1.17.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    )
    assert "no '# pyproject-deps-sha256:' header" in envlock.check(None, lock)
    envlock.stamp("uv 0.0.1", lock=lock)
    envlock.stamp("uv 0.0.2", lock=lock)
    lines = lock.read_text().splitlines()
    assert lines[:4] == [
        "# made by a tool",
        "#    make lock",
        "# locker: uv 0.0.2",
        f"# pyproject-deps-sha256: {envlock.pyproject_deps_sha256()}",
    ]
    assert envlock.check(None, lock) is None and envlock.pinned(lock) == [("six", "1.17.0", None)]


def test_installed_differences_names_wrong_and_missing_pins_only(tmp_path):
    have = metadata.version("pytest")
    lock = tmp_path / "lock.txt"
    lock.write_text(
        f"pytest=={have} \\\n    --hash=sha256:{'0' * 64}\n"
        "PyYAML==0.0.1 ; python_full_version >= '3.11' \\\n    --hash=sha256:" + "1" * 64 + "\n"
        "no-such-package-here==1.0 \\\n    --hash=sha256:" + "2" * 64 + "\n"
        "pytest==0.0.2 ; sys_platform == 'no-such-platform' \\\n    --hash=sha256:"
        + "3" * 64
        + "\n"
    )
    assert envlock.installed_differences(lock) == [
        f"pyyaml: locked 0.0.1, installed {metadata.version('pyyaml')}",
        "no-such-package-here: locked 1.0, installed none",
    ]


def test_the_tests_run_in_the_lock_environment():
    """``make test`` installs the lock first: the environment running the tests is the lock's."""
    assert envlock.installed_differences() == []


def test_the_lock_script_needs_only_the_standard_library():
    """``make install`` runs it before anything is installed: no site-packages (-S)."""
    script = ROOT / "crm_helpers" / "envlock.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for cmd, out in (("check", ""), ("sha256", envlock.lock_sha256() + "\n")):
        res = subprocess.run(
            [sys.executable, "-S", str(script), cmd], capture_output=True, text=True, env=env
        )
        assert res.returncode == 0 and res.stdout == out, res.stderr
    assert subprocess.run([sys.executable, "-S", str(script)], capture_output=True).returncode == 2


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_install_installs_exactly_the_lock_and_follows_it(tmp_path):
    venv = tmp_path / "venv"
    dry = _make("-n", "install", f"VENV={venv}").stdout
    steps = [
        "envlock.py check",
        "pip install --quiet --require-hashes -r requirements/lock.txt",
        "pip install --quiet --no-deps -e .",
        "envlock.py verify",
    ]
    at = [dry.find(s) for s in steps]
    assert all(i >= 0 for i in at) and at == sorted(at), dry
    assert '-e ".[' not in dry  # nothing resolved outside the lock
    # every package the install puts in comes from the lock or a pin (pip itself included)
    installs = [ln for ln in dry.splitlines() if " pip install " in ln]
    assert installs and all(
        "--require-hashes" in ln or "--no-deps -e ." in ln or re.search(r'"pip==[0-9.]+"', ln)
        for ln in installs
    ), installs
    # the install stamp follows the lock and pyproject.toml (in a copy, to set their times)
    tree = tmp_path / "tree"
    (tree / "requirements").mkdir(parents=True)
    for f in ("Makefile", "pyproject.toml", envlock.LOCK_FILE):
        shutil.copy(ROOT / f, tree / f)
    (venv / "bin").mkdir(parents=True)
    stamp = venv / ".installed"
    stamp.touch()
    t0 = time.time() - 1000

    def up_to_date(lock_t: float, pyproject_t: float) -> bool:
        os.utime(tree / envlock.LOCK_FILE, (lock_t, lock_t))
        os.utime(tree / "pyproject.toml", (pyproject_t, pyproject_t))
        os.utime(stamp, (t0, t0))
        res = subprocess.run(["make", "-q", "install", f"VENV={venv}"], cwd=tree)
        assert res.returncode in (0, 1)
        return res.returncode == 0

    assert up_to_date(t0 - 10, t0 - 10)
    assert not up_to_date(t0 + 10, t0 - 10)  # a new lock re-installs
    assert not up_to_date(t0 - 10, t0 + 10)
    lock = _make("-n", "lock", f"VENV={venv}").stdout
    for s in ("uv==", "pip compile pyproject.toml --all-extras --universal --generate-hashes"):
        assert s in lock, lock
    assert "--python-version 3.11" in lock and "envlock.py stamp" in lock
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI installs the lock too


def test_environment_yml_python_is_one_the_lock_covers():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = python.split("=", 1)[1]
    assert SpecifierSet(requires).contains(version + ".0")
    assert any(p.startswith(version) for p in PYTHONS)

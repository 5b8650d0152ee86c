"""The dependency lock ``requirements/lock.txt``: what it pins, whether it is in step, its hash.

Semantics
---------
* The lock is one universal requirements file (``uv pip compile --universal
  --generate-hashes``, see ``make lock``): every package of the core install and of every
  extra of ``pyproject.toml``, pinned with ``==`` and its sha256 hashes, with environment
  markers where a pin applies to some Python versions or platforms only.
* Its header line ``# pyproject-deps-sha256: <hex>`` is :func:`pyproject_deps_sha256` of
  the ``pyproject.toml`` it was made from: the sha256 of ``requires-python``, the core
  dependencies and every extra (each list sorted), so editing anything else in
  ``pyproject.toml`` (ruff, pytest settings) leaves the lock in step, and adding, removing
  or changing a dependency puts it out of step until ``make lock`` is run.
* :func:`lock_sha256` is the sha256 of the lock file's bytes: the identity of an
  environment recorded in every report's ``run.json``.
* :func:`installed_differences` compares the running environment with the pins that apply
  to it (markers evaluated for this interpreter and platform): a missing package or another
  version is a difference; packages installed beyond the lock are not.

This module uses the standard library only (``packaging`` for :func:`installed_differences`,
imported there), so ``make install`` runs it as a script before anything is installed::

    python crm_helpers/envlock.py check            # exit 1 when the lock is out of step
    python crm_helpers/envlock.py stamp "uv 0.13.10"  # write the header after `make lock`
    python crm_helpers/envlock.py verify           # exit 1 when the environment differs
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

__all__ = [
    "HEADER_KEY",
    "LOCK_FILE",
    "check",
    "info",
    "installed_differences",
    "lock_sha256",
    "pinned",
    "pyproject_deps_sha256",
    "recorded_deps_sha256",
    "stamp",
]

ROOT: Path = Path(__file__).resolve().parents[1]
#: The lock, relative to the checkout.
LOCK_FILE = "requirements/lock.txt"
#: Header key of the pyproject dependency hash in the lock.
HEADER_KEY = "pyproject-deps-sha256"
_HEADER_RE = re.compile(rf"^# {HEADER_KEY}: ([0-9a-f]{{64}})\s*$", re.M)
_PIN_RE = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$"
)


def _name(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_deps_sha256(pyproject: str | Path | None = None) -> str:
    """sha256 of ``requires-python``, the dependencies and the extras of ``pyproject``.

    Each list is sorted and the whole is dumped as canonical JSON before hashing, so the
    order of the lines and the rest of the file do not matter.
    """
    path = Path(pyproject) if pyproject is not None else ROOT / "pyproject.toml"
    project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    canon = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            k: sorted(v) for k, v in sorted(project.get("optional-dependencies", {}).items())
        },
    }
    blob = json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _lock_path(lock: str | Path | None) -> Path:
    return Path(lock) if lock is not None else ROOT / LOCK_FILE


def recorded_deps_sha256(lock: str | Path | None = None) -> str | None:
    """The ``pyproject-deps-sha256`` written in the lock's header, or None."""
    m = _HEADER_RE.search(_lock_path(lock).read_text(encoding="utf-8"))
    return m.group(1) if m else None


def lock_sha256(lock: str | Path | None = None) -> str:
    """sha256 of the lock file's bytes."""
    return hashlib.sha256(_lock_path(lock).read_bytes()).hexdigest()


def pinned(lock: str | Path | None = None) -> list[tuple[str, str, str | None]]:
    """Every pin of the lock as ``(normalised name, version, marker or None)``.

    A package may appear more than once with disjoint markers (another version for some
    Python versions).
    """
    out = []
    for line in _lock_path(lock).read_text(encoding="utf-8").splitlines():
        m = _PIN_RE.match(line)
        if m:
            out.append((_name(m.group(1)), m.group(3), (m.group(4) or "").strip() or None))
    return out


def check(pyproject: str | Path | None = None, lock: str | Path | None = None) -> str | None:
    """None when the lock was made from ``pyproject``'s dependencies, else why not."""
    path = _lock_path(lock)
    if not path.is_file():
        return f"{LOCK_FILE} is missing: run `make lock`"
    recorded = recorded_deps_sha256(path)
    if recorded is None:
        return f"{LOCK_FILE} has no '# {HEADER_KEY}:' header: run `make lock`"
    if recorded != pyproject_deps_sha256(pyproject):
        return (
            f"{LOCK_FILE} is out of step with the dependencies in pyproject.toml "
            "(they changed since the lock was made): run `make lock` and commit the lock"
        )
    return None


def stamp(locker: str, pyproject: str | Path | None = None, lock: str | Path | None = None) -> None:
    """Write the header lines (the locker, the pyproject dependency hash) into the lock.

    They go right after the tool's own header comment, replacing earlier ones.
    """
    path = _lock_path(lock)
    lines = [
        x
        for x in path.read_text(encoding="utf-8").splitlines()
        if not x.startswith((f"# {HEADER_KEY}:", "# locker:"))
    ]
    at = next((i for i, x in enumerate(lines) if not x.startswith("#")), len(lines))
    lines[at:at] = [f"# locker: {locker}", f"# {HEADER_KEY}: {pyproject_deps_sha256(pyproject)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def installed_differences(lock: str | Path | None = None) -> list[str]:
    """How the running environment differs from the lock's pins that apply to it.

    Returns
    -------
    list of str
        One ``"name: locked X, installed Y"`` (or ``"installed: none"``) per pin whose
        marker holds here and whose version is not the installed one; empty when the
        environment has every applicable pin.
    """
    from importlib import metadata

    from packaging.markers import Marker

    out = []
    for name, version, marker in pinned(lock):
        if marker is not None and not Marker(marker).evaluate():
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "none"
        if have != version:
            out.append(f"{name}: locked {version}, installed {have}")
    return out


@functools.lru_cache(maxsize=4)
def _info(path: str, mtime_ns: int) -> dict[str, Any]:
    try:
        differs = installed_differences(path)
    except ImportError:  # packaging missing: cannot tell
        differs = None
    return {
        "file": LOCK_FILE,
        "sha256": lock_sha256(path),
        "matches_environment": None if differs is None else not differs,
        "differences": None if differs is None else differs[:10],
        "n_differences": None if differs is None else len(differs),
    }


def info(lock: str | Path | None = None) -> dict[str, Any] | None:
    """The lock as recorded in a report's provenance, or None outside a checkout.

    ``{"file", "sha256", "matches_environment", "differences" (the first 10),
    "n_differences"}``: the lock's hash, and whether the environment that made the report
    was the lock's.
    """
    path = _lock_path(lock)
    if not path.is_file():
        return None
    return dict(_info(str(path), path.stat().st_mtime_ns))


def main(argv: list[str] | None = None) -> int:
    """``check`` | ``stamp LOCKER`` | ``verify`` | ``sha256`` (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    cmd = args[0] if args else ""
    if cmd == "check":
        problem = check()
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
        return 0
    if cmd == "stamp" and len(args) == 2:
        stamp(args[1])
        return 0
    if cmd == "verify":
        diffs = installed_differences()
        if diffs:
            print(
                f"error: the environment differs from {LOCK_FILE} in {len(diffs)} package(s): "
                + "; ".join(diffs[:10]),
                file=sys.stderr,
            )
            return 1
        print(f"environment matches {LOCK_FILE} (sha256 {lock_sha256()[:12]})")
        return 0
    if cmd == "sha256":
        print(lock_sha256())
        return 0
    print(__doc__.split("::", 1)[1].rstrip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

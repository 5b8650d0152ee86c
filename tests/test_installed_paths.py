"""An installed package (``pip install .``) never points its defaults into site-packages (#26).

The unit tests check the rule on folder layouts; the slow test builds the wheel from a copy of
the package (an isolated build: pip fetches setuptools), installs it into a folder and reads
the defaults from a fresh interpreter outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crm_helpers import config


def test_a_checkout_keeps_its_data_folder(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    assert config.is_checkout(tmp_path)
    assert config.default_data_dir(tmp_path) == tmp_path / "data" / "synthetic"
    assert config.DEFAULT_DATA_DIR == config.ROOT / "data" / "synthetic"  # this checkout


def test_site_packages_is_not_a_data_folder(tmp_path):
    site = tmp_path / "site-packages"
    (site / "crm_helpers").mkdir(parents=True)
    got = config.default_data_dir(site, env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert got == tmp_path / "xdg" / "crm-workbench" / "synthetic"
    home = config.default_data_dir(site, env={})
    assert home == Path.home() / ".local" / "share" / "crm-workbench" / "synthetic"
    assert site not in got.parents and site not in home.parents


@pytest.mark.slow
def test_wheel_install_defaults_outside_site_packages(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(config.ROOT / "crm_helpers", src / "crm_helpers")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(config.ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
    )
    if built.returncode and "setuptools" in built.stderr and "find" in built.stderr.lower():
        pytest.skip(f"no package index to fetch the build backend: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("crm_helpers-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True
    )
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("CRM_DATA_DIR", None)
    env.pop("CRM_REPORTS_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", "from crm_helpers import config as c; "
         "print(c.__file__); print(c.DEFAULT_DATA_DIR); print(c.data_dir()); print(c.reports_dir())"],
        cwd=cwd, env=env, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    assert Path(out[0]).is_relative_to(site)  # the installed copy, not the checkout
    assert Path(out[1]) == tmp_path / "xdg" / "crm-workbench" / "synthetic"
    assert Path(out[2]) == Path(out[1])
    assert Path(out[3]) == cwd / "reports"

"""Every package of the source tree ships: pyproject lists them explicitly (assets/ is mapped in)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_and_exists():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ppdoctor").rglob("__init__.py")}
    assert found <= listed, f"not in pyproject packages: {sorted(found - listed)}"
    mapped = config.get("package-dir", {})
    for package in listed:
        path = ROOT / mapped.get(package, package.replace(".", "/"))
        if package.startswith("ppdoctor.assets"):
            path = ROOT / mapped["ppdoctor.assets"] / "/".join(package.split(".")[2:])
        assert (path / "__init__.py").exists(), f"{package} is listed but {path} has no __init__.py"


def test_scenarios_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.toml" in config["package-data"]["ppdoctor.assets.scenarios"]
    assert list((ROOT / "assets" / "scenarios").glob("*.toml"))

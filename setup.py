"""Installs buildtemplates/ as data under <prefix>/share/fnctl (found by fnctl.config)."""

from pathlib import Path

from setuptools import setup


def template_files():
    root = Path(__file__).parent
    by_folder: dict[str, list[str]] = {}
    for path in sorted((root / "buildtemplates").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith("_test.go"):
            rel = path.relative_to(root)
            by_folder.setdefault(str(Path("share/fnctl") / rel.parent), []).append(str(rel))
    return sorted(by_folder.items())


setup(data_files=template_files())

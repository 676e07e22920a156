"""Type-check the ``xtalagent`` package from this checkout's own files: ``python .ci/mypy.py``.

setuptools maps the package onto the top-level folders (``core/`` is ``xtalagent``, ``agent/`` is
``xtalagent.agent``, ...; ``[tool.setuptools.package-dir]`` in ``pyproject.toml``). mypy has no such
mapping, and the editable install's import hook is invisible to it, so this script mirrors the
mapping as a tree of symlinks under ``.mypy_cache/`` (git-ignored), checks ``-p xtalagent`` there
with the settings in ``[tool.mypy]``, and prints the errors with the checkout's paths. Nothing needs
installing beyond mypy and the dependencies, so it works on a fresh clone; extra arguments go to mypy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".mypy_cache" / "package-tree"


def package_dirs() -> dict[str, str]:
    """``{package: folder}`` from pyproject.toml, e.g. ``{"xtalagent": "core", "xtalagent.agent": "agent"}``."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return dict(tomllib.load(fh)["tool"]["setuptools"]["package-dir"])


def build_tree(mapping: dict[str, str]) -> dict[Path, Path]:
    """Symlinks laid out as the installed package; returns ``{tree folder: checkout folder}``."""
    if TREE.exists():
        for path in sorted(TREE.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            path.unlink() if path.is_symlink() or path.is_file() else path.rmdir()
    links: dict[Path, Path] = {}
    for package in sorted(mapping, key=lambda p: p.count(".")):
        source, target = ROOT / mapping[package], TREE.joinpath(*package.split("."))
        nested = [p for p in mapping if p.startswith(package + ".")]
        if nested:  # a real folder, so the mapped subpackages can sit inside it beside the files
            target.mkdir(parents=True, exist_ok=True)
            for child in source.iterdir():
                if child.name != "__pycache__" and not (target / child.name).exists():
                    (target / child.name).symlink_to(child)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source, target_is_directory=True)
        links[target] = source
    return links


def main(argv: list[str]) -> int:
    mapping = package_dirs()
    links = build_tree(mapping)
    roots = {p.split(".")[0] for p in mapping}
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    command += ["--cache-dir", str(ROOT / ".mypy_cache"), *[a for r in sorted(roots) for a in ("-p", r)], *argv]
    # run from inside the tree: the checkout's own folders (a git-ignored datasets/, say) must not be
    # importable as namespace packages, and the tree must come before site-packages
    env = {**os.environ, "MYPYPATH": str(TREE)}
    result = subprocess.run(command, cwd=TREE, env=env, capture_output=True, text=True)
    # longest tree prefix first, so xtalagent/agent/x.py maps to agent/x.py, not core/agent/x.py
    prefixes = sorted(links.items(), key=lambda kv: len(kv[0].parts), reverse=True)
    for line in (result.stdout + result.stderr).splitlines():
        for tree_dir, source in prefixes:
            for shown in (str(tree_dir) + os.sep, os.path.relpath(tree_dir, TREE) + os.sep):
                if line.startswith(shown):
                    line = os.path.relpath(source, ROOT) + os.sep + line[len(shown) :]
                    break
            else:
                continue
            break
        print(line)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

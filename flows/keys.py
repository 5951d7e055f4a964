"""Cache keys for the build flow: the content hash of each task's inputs and of the settings it reads.

A per-record task (one work unit) is keyed by the unit's bytes, its source's settings and the per-record
sections of the spec, so adding a file or a source leaves every other unit's key unchanged. Each global stage
is keyed by the key of the stage before it plus the settings and files (references, eval sets, the tokenizer)
its row of ``plan.STAGES`` names, so changing the mixture re-runs the mixture and what follows, never dedup.
Every key includes ``CODE``, a hash of the pipeline's own source: a new version invalidates all.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import orjson

from pipeline import plan, versions
from pipeline.config import Mix, ResolvedReference, ResolvedSource
from pipeline.io import output_folder
from pipeline.io.readers import display_path
from pipeline.io.tokenizer import tokenizer_source
from pipeline.io.writers import input_sha256
from pipeline.records import WorkUnit, work_units
from schemas.mix import MixSpec

log = logging.getLogger(__name__)
PACKAGES = ("pipeline", "schemas")
PER_RECORD_SECTIONS = ("validate", "normalize", "filters", "quality", "pii")  # what shard_unit reads of the spec


@cache
def code_digest() -> str:
    """sha256 over the source files of the packages that compute the data."""
    root = Path(__file__).resolve().parents[1]
    files = sorted(p for package in PACKAGES for p in (root / package).rglob("*.py"))
    return digest(*((p.relative_to(root).as_posix(), p.read_bytes()) for p in files))


def digest(*parts: Any) -> str:
    """sha256 of the parts, each encoded as JSON (bytes as their own sha256) so no two part lists collide."""
    h = hashlib.sha256()
    for part in parts:
        h.update(orjson.dumps(part, default=_encode, option=orjson.OPT_SORT_KEYS))
        h.update(b"\x00")
    return h.hexdigest()


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def _section(spec: MixSpec, *names: str) -> dict[str, Any]:
    dumped = spec.model_dump(mode="json", by_alias=True)
    return {name: dumped[name] for name in names}


def source_content(source: ResolvedSource, files: Iterable[Path], root: Path) -> list[Any] | None:
    """What a source's records are made of: each file's name and bytes, or a Hub id at a pinned revision.
    None for a Hub dataset without a revision: its content can change under the same name, so it is not cached."""
    if source.kind == "hub":
        return None if source.spec.revision is None else [source.spec.hub, source.spec.revision]
    if source.kind == "files":
        paths = list(files)
    else:  # an hf_folder source always has its folder
        paths = sorted(p for p in cast(Path, source.folder).rglob("*") if p.is_file())
    return [[display_path(p, root), input_sha256(p)] for p in paths]


def unit_key(unit: WorkUnit) -> str | None:
    files = unit.files or unit.source.files
    content = source_content(unit.source, files, unit.root)
    if content is None:
        return None
    return digest("shard", code_digest(), unit.source.spec.model_dump(mode="json", by_alias=True),
                  [display_path(unit.source.base, unit.root) if unit.source.base else None],
                  _section(unit.spec, *PER_RECORD_SECTIONS), content)


def reference_content(ref: ResolvedReference, root: Path) -> list[Any] | None:
    if ref.build is not None:
        manifest = ref.build / "manifest.json"
        return [ref.name, input_sha256(manifest) if manifest.is_file() else None]
    assert ref.source is not None
    return source_content(ref.source, ref.source.files, root)


def tokenizer_content(name: str) -> list[Any]:
    source = tokenizer_source(name)
    folder = Path(source)
    if folder.is_dir():
        return [[p.name, input_sha256(p)] for p in sorted(folder.iterdir()) if p.is_file()]
    return [source]


@dataclass(frozen=True)
class BuildKeys:
    """One key per task; None where an input cannot be content-hashed (then that task and all after it run)."""

    units: list[str | None]
    stages: dict[str, str | None]  # each global stage of plan.STAGES, by name
    build: str | None  # the whole build: what the output folder's manifest records


def _all_known(contents: list[list[Any] | None]) -> list[Any] | None:
    """None when one content is unknown (a Hub dataset without a revision): the stage cannot be cached."""
    return None if None in contents else contents


def build_keys(mix: Mix) -> BuildKeys:
    units = [unit_key(unit) for unit in work_units(mix)]
    files = {
        "references": _all_known([reference_content(ref, mix.root) for ref in mix.references]),
        "evals": _all_known([reference_content(ref, mix.root) for ref in mix.evals]),
        "tokenizer": tokenizer_content(mix.spec.tokenize.tokenizer) if mix.spec.tokenize.enabled else [],
    }

    def chain(previous: str | None, *parts: Any) -> str | None:
        if previous is None or any(part is None for part in parts):
            return None
        return digest(previous, *parts)

    key = None if None in units else digest("stages", code_digest(), units, [s.spec.name for s in mix.sources])
    stages = {}
    for stage in plan.STAGES:
        key = chain(key, stage.name, _section(mix.spec, *stage.settings), *(files[name] for name in stage.files))
        stages[stage.name] = key
    return BuildKeys(units, stages, chain(key, mix.spec.model_dump(mode="json", by_alias=True)))


def current_output(mix: Mix, key: str | None, versioned: bool, verify: bool = False) -> Path | None:
    """The output folder when it was written from exactly these inputs, settings and code and its files are
    intact (sizes against the manifest; with ``verify`` the sha256 too), else None: the build runs again, from
    its cached stages where their outputs are still there."""
    folder = versions.latest(mix.out_dir) if versioned else mix.out_dir
    if key is None or folder is None or not (folder / "manifest.json").is_file():
        return None
    if orjson.loads((folder / "manifest.json").read_bytes()).get("build_key") != key:
        return None
    problem = output_folder.damaged(folder, verify)
    if problem is not None:
        log.warning("%s: %s; rebuilding it", folder, problem)
        return None
    return folder

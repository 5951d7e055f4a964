"""Load a mix.yaml into a validated ``MixSpec`` and resolve its sources to files, before any work starts.

Every problem is a ``ConfigError`` whose message names the mix file, the key path (``sources[1].formt``) and,
for an unknown key, the closest valid one.
"""

from __future__ import annotations

import difflib
import glob as globlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from schemas.mix import MixSpec, SourceSpec

READABLE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")
HF_FOLDER_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
GLOB_CHARS = set("*?[")


class ConfigError(ValueError):
    """A mix file that cannot be built; the message is what the user sees."""


@dataclass(frozen=True)
class ResolvedSource:
    """A source with its location made concrete: files to read, an HF folder, or a Hub id."""

    spec: SourceSpec
    kind: Literal["files", "hf_folder", "hub"]
    files: tuple[Path, ...] = ()
    base: Path | None = None  # files of a glob or folder are named relative to this in record ids
    folder: Path | None = None


@dataclass(frozen=True)
class ResolvedReference:
    """A ``dedup.against`` entry: an earlier build's output folder, or any dataset read like a source."""

    name: str  # as written in mix.yaml
    build: Path | None = None
    source: ResolvedSource | None = None

    @property
    def label(self) -> str:
        """A short name for reasons and ids: the file or folder name without its suffix."""
        return self.source.spec.name if self.source is not None else (self.build.name if self.build else self.name)


@dataclass(frozen=True)
class Mix:
    spec: MixSpec
    path: Path
    sources: tuple[ResolvedSource, ...]
    references: tuple[ResolvedReference, ...] = ()
    evals: tuple[ResolvedReference, ...] = ()

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def out_dir(self) -> Path:
        return (self.root / self.spec.output.dir / self.spec.name).resolve()


def load_mix(path: str | Path) -> Mix:
    """Parse, validate and resolve a mix file; raise ConfigError before any data is read."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: mix file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        spec = MixSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err)) from None
    root = path.resolve().parent
    sources = tuple(resolve_source(f"{path}: sources[{i}] ({s.name})", s, root) for i, s in enumerate(spec.sources))
    references = tuple(resolve_reference(f"{path}: dedup.against[{i}]", text, root)
                       for i, text in enumerate(spec.dedup.against))
    evals = tuple(resolve_reference(f"{path}: decontaminate.against[{i}]", text, root)
                  for i, text in enumerate(spec.decontaminate.against))
    return Mix(spec=spec, path=path.resolve(), sources=sources, references=references, evals=evals)


def resolve_reference(where: str, text: str, root: Path) -> ResolvedReference:
    """A folder with a manifest.json is an earlier build (its train/eval records and signature index);
    anything else must be readable as a source."""
    target = (root / text).resolve()
    if (target / "manifest.json").is_file():
        if not (target / "train.parquet").is_file():
            raise ConfigError(f"{where}: build folder '{text}' has a manifest.json but no train.parquet")
        return ResolvedReference(name=text, build=target)
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", Path(text).stem).strip("_.-") or "reference"
    return ResolvedReference(name=text, source=resolve_source(where, SourceSpec(name=name, path=text), root))


def resolve_source(where: str, source: SourceSpec, root: Path) -> ResolvedSource:
    if source.hub is not None:
        return ResolvedSource(spec=source, kind="hub")
    assert source.path is not None
    pattern = source.path
    target = (root / pattern).resolve() if not Path(pattern).is_absolute() else Path(pattern)
    if GLOB_CHARS & set(pattern):
        matches = sorted(Path(p) for p in globlib.glob(str(target), recursive=True) if Path(p).is_file())
        if not matches:
            raise ConfigError(f"{where}: glob '{pattern}' matched no files (looked in {target.parent})")
        unreadable = [m for m in matches if m.suffix not in READABLE_SUFFIXES]
        if unreadable:
            raise ConfigError(f"{where}: glob '{pattern}' matched unreadable file {unreadable[0]}; {_suffix_hint()}")
        return ResolvedSource(spec=source, kind="files", files=tuple(matches), base=_glob_base(target))
    if not target.exists():
        raise ConfigError(f"{where}: file not found: {pattern} (resolved to {target})")
    if target.is_dir():
        if any((target / m).exists() for m in HF_FOLDER_MARKERS):
            return ResolvedSource(spec=source, kind="hf_folder", folder=target)
        files = tuple(sorted(p for p in target.iterdir() if p.is_file() and p.suffix in READABLE_SUFFIXES))
        if not files:
            raise ConfigError(f"{where}: folder '{pattern}' holds no readable files; {_suffix_hint()}")
        return ResolvedSource(spec=source, kind="files", files=files, base=target)
    if target.suffix not in READABLE_SUFFIXES:
        raise ConfigError(f"{where}: cannot read '{pattern}'; {_suffix_hint()}")
    return ResolvedSource(spec=source, kind="files", files=(target,))


def _suffix_hint() -> str:
    return f"readable: {', '.join(READABLE_SUFFIXES)} files, or an HF save_to_disk folder"


def _glob_base(target: Path) -> Path:
    parts = []
    for part in target.parts:
        if GLOB_CHARS & set(part):
            break
        parts.append(part)
    return Path(*parts)


def format_validation_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid mix spec ({err.error_count()} problem{'s' if err.error_count() > 1 else ''})"]
    for e in err.errors(include_url=False):
        loc = _loc_text(e["loc"])
        if e["type"] == "extra_forbidden":
            key = str(e["loc"][-1])
            valid = _valid_keys(MixSpec, e["loc"][:-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
            lines.append(f"  {loc}: unknown key '{key}'; {hint}")
        else:
            lines.append(f"  {loc or '(top level)'}: {e['msg']}")
    return "\n".join(lines)


def _loc_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys accepted at ``loc`` inside ``model``, walking nested sections and lists of them."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = _field_by_key(current, str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _field_by_key(model: type[BaseModel], key: str):  # type: ignore[no-untyped-def]
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None

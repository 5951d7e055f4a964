"""Load a mix.yaml into a validated ``MixSpec`` and resolve its sources to files, before any work starts.

Every problem is a ``ConfigError`` whose message names the mix file, the key path (``sources[1].formt``) and,
for an unknown key, the closest valid one.
"""

from __future__ import annotations

import difflib
import glob as globlib
import logging
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from pipeline.io import split_files
from schemas.mix import MixSpec, SourceSpec

READABLE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")
HF_FOLDER_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
GLOB_CHARS = set("*?[")
NOT_REGULAR = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
               (stat.S_ISSOCK, "socket"))

log = logging.getLogger(__name__)


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
        raw = load_yaml(path)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
                          "save the mix file as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the mix file ({err.strerror or err})") from None
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
    for key in ("retention_eval", "task_eval"):
        for i, text in enumerate(getattr(spec.train, key)):
            resolve_reference(f"{path}: train.{key}[{i}]", text, root)  # stops a typo before any work
    return Mix(spec=spec, path=path.resolve(), sources=sources, references=references, evals=evals)


def load_yaml(path: Path) -> Any:
    """The YAML document in ``path``; a key given twice in one mapping is a ConfigError (YAML itself keeps the
    last value without a word)."""
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(path, node, ())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_duplicate_keys(path: Path, node: yaml.Node, loc: tuple[Any, ...]) -> None:
    """Walk the composed document (iteratively: a deeply nested file must not overflow the stack)."""
    todo, seen = [(node, loc)], set()
    while todo:
        node, loc = todo.pop()
        if id(node) in seen:  # an alias to a node already checked (or a recursive one)
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            todo += [(child, (*loc, i)) for i, child in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, child in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                    continue  # a merge key or a complex key: left to the schema
                line = key.start_mark.line + 1
                if (key.tag, key.value) in first:
                    raise ConfigError(f"{path}: line {line}: duplicate key '{_loc_text((*loc, key.value))}' "
                                      f"(first given on line {first[key.tag, key.value]}); give each key once")
                first[key.tag, key.value] = line
                todo.append((child, (*loc, key.value)))


def resolve_reference(where: str, text: str, root: Path) -> ResolvedReference:
    """A folder with a manifest.json is an earlier build (its train/eval records and signature index);
    anything else must be readable as a source."""
    target = (root / text).resolve()
    if (target / "manifest.json").is_file():
        if not split_files.paths(target, "train"):
            raise ConfigError(f"{where}: build folder '{text}' has a manifest.json but no train.parquet "
                              "(nor its shards train-00000-of-000NN.parquet)")
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
        base = _glob_base(target)
        matches = _regular_files(where, sorted(Path(p) for p in globlib.glob(str(target), recursive=True)), base)
        if not matches:
            raise ConfigError(f"{where}: glob '{pattern}' matched no files (looked in {target.parent})")
        unreadable = [m for m in matches if m.suffix not in READABLE_SUFFIXES]
        if unreadable:
            raise ConfigError(f"{where}: glob '{pattern}' matched unreadable file {unreadable[0]}; {_suffix_hint()}")
        return ResolvedSource(spec=source, kind="files", files=tuple(matches), base=base)
    if not target.exists():
        raise ConfigError(f"{where}: file not found: {pattern} (resolved to {target})")
    if target.is_dir():
        if any((target / m).exists() for m in HF_FOLDER_MARKERS):
            return ResolvedSource(spec=source, kind="hf_folder", folder=target)
        readable = sorted(p for p in target.iterdir() if p.suffix in READABLE_SUFFIXES)
        files = tuple(_regular_files(where, readable, target))
        if not files:
            raise ConfigError(f"{where}: folder '{pattern}' holds no readable files; {_suffix_hint()}")
        return ResolvedSource(spec=source, kind="files", files=files, base=target)
    if (kind := _not_regular(target)) is not None:
        raise ConfigError(f"{where}: '{pattern}' is a {kind}, not a regular file")
    if target.suffix not in READABLE_SUFFIXES:
        raise ConfigError(f"{where}: cannot read '{pattern}'; {_suffix_hint()}")
    return ResolvedSource(spec=source, kind="files", files=(target,))


def _regular_files(where: str, paths: Iterable[Path], base: Path) -> list[Path]:
    """The regular files among ``paths`` (found in the folder or by the glob of ``base``), in order; folders are
    passed over. A link is followed only when it resolves inside ``base``: one that leaves it (a ``passwd.jsonl
    -> /etc/passwd``), a broken or looping link, and a FIFO, device or socket (reading one blocks the build)
    are skipped with a logged warning."""
    found, inside = [], base.resolve()
    for path in paths:
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            log.warning("%s: skipped %s: a broken or looping link", where, path)
            continue
        if not real.is_relative_to(inside):
            log.warning("%s: skipped %s: a link to %s, outside %s", where, path, real, inside)
        elif (kind := _not_regular(real)) is not None:
            log.warning("%s: skipped %s: a %s, not a regular file", where, path, kind)
        elif real.is_file():
            found.append(path)
    return found


def _not_regular(path: Path) -> str | None:
    """What ``path`` is when it is a FIFO, a device or a socket; None for a file or folder."""
    mode = path.stat().st_mode
    return next((name for test, name in NOT_REGULAR if test(mode)), None)


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


def _field_by_key(model: type[BaseModel], key: str) -> FieldInfo | None:
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

"""Stage outputs on disk for the build flow: a task returns a small handle, its frames stay in files.

Why: a Prefect future keeps its task's result alive where the task ran (a Dask worker's memory) for as long as
the flow holds the future, and the flow holds every stage's future until the report is written. Passing the
frames themselves, a 2-worker Dask build of the 1M-record corpus kept every stage's output in one worker at once
(20.7 GB) and pickled each into Prefect's result storage. So each task writes the frames of its output to Arrow
IPC files in ``<root>/<build name>/<cache key>/`` and returns a ``StageHandle``: the folder and the output's
skeleton (everything that is not a frame: counters, reports, settings) with each frame replaced by its file name.
Prefect persists only the handle; the next task reads the frames it needs, memory-mapped (``mapped``).

Contract: ``put(value, folder)`` -> handle; ``get(handle, without=...)`` -> the value, with the named fields of
its top-level dataclass(es) left out (empty frames of their schema: what the direct build's ``finish`` drops
before the report). An ``Outcome`` whose stage wrote ``files`` (tokenize: tokenized/'s rows, in the
``scratch`` folder the task gave it) has them moved into ``folder/files``. ``complete(folder)`` tells whether a
folder holds a finished output: the flow refreshes a task's Prefect cache when its handle would point at a
folder that is gone; ``finished(folder)`` is the handle a complete folder keeps, which a task run again over it
returns. Every worker needs ``root`` at the
same path (a shared file system on a cluster, like Prefect's result storage).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import pickle
import shutil
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from flows import dask_worker, mapped_pages
from pipeline import plan
from pipeline.io import output_folder
from pipeline.stage import Outcome

# of a capped Dask worker's memory, the most that pages of the stage files it reads may hold before they are let
# go: the stages' own memory is what the limit is for
MAPPED_SHARE = 0.25
DONE = "done"  # written last: the folder is complete
HANDLE = "handle.pickle"  # the handle put returned, for ``finished``
FILES = "files"  # the files a stage wrote (Outcome.files: tokenized/'s rows), in its folder


@dataclass(frozen=True)
class FrameFile:
    """A frame in the stage folder: one Arrow file, or several read back as their concatenation (the parts that
    the workers of a partitioned stage wrote, in order)."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class StageHandle:
    folder: str
    skeleton: Any


def folder_for(root: Path, build: str, key: str | None) -> Path:
    """Where a task's output lives: by its cache key, or (a task that cannot be cached) a folder of its own."""
    return root / build / (key or f"run-{uuid.uuid4().hex}")


def complete(folder: Path) -> bool:
    return (folder / DONE).is_file()


def put(value: Any, folder: Path, written: Mapping[str, Sequence[Path]] | None = None) -> StageHandle:
    """Write ``value``'s frames under ``folder`` (replacing what is there) and return its handle. ``written``:
    frames already written as Arrow files (``write``), by where they go in ``value`` (a field of its dataclass,
    or ``outputs/<name>`` for an entry of an Outcome's outputs), each as its parts in order; they move into the
    folder, and the frame ``value`` holds in their place is not written."""
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex}")
    tmp.mkdir(parents=True)
    try:
        numbers = itertools.count()
        for place in written or {}:
            value = _at(value, place.split("/"), pl.DataFrame())
        skeleton = _strip(value, tmp, numbers)
        for place, parts in (written or {}).items():
            names = tuple(f"{next(numbers)}.arrow" for _ in parts)
            for part, name in zip(parts, names, strict=True):
                shutil.move(part, tmp / name)
            skeleton = _at(skeleton, place.split("/"), FrameFile(names))
        if isinstance(skeleton, Outcome) and skeleton.files is not None:  # files the stage wrote, moved in
            shutil.move(skeleton.files, tmp / FILES)
            skeleton = dataclasses.replace(skeleton, files=folder / FILES)
        handle = StageHandle(str(folder), skeleton)
        (tmp / HANDLE).write_bytes(pickle.dumps(handle))
        (tmp / DONE).touch()
        output_folder.replace(tmp, folder)  # over a refreshed cache's folder (the same key, computed again) too
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return handle


def finished(folder: Path) -> StageHandle | None:
    """The handle ``put`` returned for a complete ``folder`` (None: none is complete there). A task run again
    over the same key (Dask recomputes a finished task whose result was lost with its worker; the flow had told
    it to refresh its cache when its folder was missing at submission) returns this instead of computing the
    same output again."""
    if not complete(folder) or not (folder / HANDLE).is_file():
        return None
    try:
        handle = pickle.loads((folder / HANDLE).read_bytes())
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, TypeError):
        return None  # written by another version of flows/ (its classes changed): computed again, not trusted
    return handle if isinstance(handle, StageHandle) else None


@contextlib.contextmanager
def scratch(folder: Path) -> Iterator[Path]:
    """A folder beside ``folder`` where a task's stage may write files (``plan.Context.scratch``): ``put`` moves
    the outcome's ``files`` from it into ``folder``; whatever is left is removed when the task ends."""
    path = folder.with_name(f".{folder.name}.scratch-{uuid.uuid4().hex}")
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def get(handle: StageHandle, without: Collection[str] = ()) -> Any:
    """The value ``put`` wrote; the top-level dataclass fields named in ``without`` come back as empty frames."""
    folder = Path(handle.folder)
    if not complete(folder):
        raise FileNotFoundError(f"{folder}: a build stage's output is missing; run the build again to recompute it")
    skeleton = handle.skeleton
    if without and dataclasses.is_dataclass(skeleton) and not isinstance(skeleton, type):
        skeleton = dataclasses.replace(skeleton, **{
            name: _empty(folder, getattr(skeleton, name)) for name in without})
    return _fill(skeleton, folder)


def stage_inputs(earlier: Mapping[str, StageHandle], stage: plan.Stage) -> dict[str, pl.DataFrame]:
    """The outputs of the ``earlier`` stages that ``stage`` reads (``plan.inputs``), without their records."""
    if not stage.reads:
        return {}
    return plan.inputs({name: get(handle, without=("kept", "rejected")) for name, handle in earlier.items()}, stage)


def prune(root: Path, build: str, keep: Iterable[str | None]) -> None:
    """Remove the outputs of ``build`` that the current keys no longer name (older inputs, settings or code)."""
    folder = root / build
    if not folder.is_dir():
        return
    kept = {key for key in keep if key}
    for child in folder.iterdir():
        if child.name not in kept:
            shutil.rmtree(child, ignore_errors=True)


def remove(handle: StageHandle) -> None:
    shutil.rmtree(handle.folder, ignore_errors=True)


def rows(handle: StageHandle, field: str) -> int:
    """The rows of a frame field of the handle's value, from its files' metadata."""
    file: FrameFile = getattr(handle.skeleton, field)
    return sum(pl.scan_ipc(Path(handle.folder) / name).select(pl.len()).collect().item() for name in file.names)


def linked(handle: StageHandle, place: str, folder: Path) -> list[Path]:
    """Hard links in ``folder`` to the files of a frame of the handle's value (at ``place``, as in ``put``'s
    ``written``): ``written`` for a frame passed on unchanged, which is then not written again (the stage root is
    one file system)."""
    file = handle.skeleton
    for name in place.split("/"):
        file = file[name] if isinstance(file, dict) else getattr(file, name)
    assert isinstance(file, FrameFile), f"{place} of {handle.folder} is not a frame in a file"
    links = []
    for k, name in enumerate(file.names):
        links.append(folder / f"{place.replace('/', '-')}-{k:05d}.arrow")
        os.link(Path(handle.folder) / name, links[-1])
    return links


def write(frame: pl.DataFrame, path: Path) -> Path:
    """``frame`` as a stage folder holds it: an uncompressed Arrow IPC file, which ``mapped`` reads back."""
    frame.write_ipc(path, compression="uncompressed")
    return path


def _strip(value: Any, folder: Path, numbers: Any) -> Any:
    def save(frame: pl.DataFrame) -> FrameFile:
        name = f"{next(numbers)}.arrow"
        write(frame, folder / name)
        return FrameFile((name,))

    return _replace(value, pl.DataFrame, save)


def _at(value: Any, place: Sequence[str], new: Any) -> Any:
    """``value`` with the field or dict entry at ``place`` (a path of names) replaced by ``new``."""
    name, rest = place[0], place[1:]
    if isinstance(value, dict):
        if name not in value:
            raise KeyError(f"no output {name!r} to hold the written frame")
        return {**value, name: _at(value[name], rest, new) if rest else new}
    inner = getattr(value, name)
    return dataclasses.replace(value, **{name: _at(inner, rest, new) if rest else new})


def _fill(value: Any, folder: Path) -> Any:
    # an empty frame ``get`` put in place stays
    return _replace(value, FrameFile, lambda file: _parts(folder, file.names))


def _parts(folder: Path, names: Sequence[str]) -> pl.DataFrame:
    frames = [mapped(folder / name) for name in names]
    return frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)


def mapped(path: Path) -> pl.DataFrame:
    """The frame of an uncompressed Arrow IPC file, memory-mapped: its pages are read when a column is used
    (polars' own ``read_ipc`` reads the whole file into memory since polars 2, which made every task hold every
    stage output it opened: 4 GB at 1M records). On a Dask worker with a memory limit, the pages it has read are
    let go whenever they pass ``MAPPED_SHARE`` of the limit (flows/mapped_pages.py)."""
    worker = dask_worker()
    limit = worker.memory_manager.memory_limit if worker is not None else None
    if limit:
        mapped_pages.keep_under(int(limit * MAPPED_SHARE))
    frame = pl.from_arrow(mapped_pages.table(path), rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _replace(value: Any, kind: type, replace: Callable[[Any], Any]) -> Any:
    """``value`` with every ``kind`` inside its dataclasses, lists, tuples and dicts replaced."""
    if isinstance(value, kind):
        return replace(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{
            f.name: _replace(getattr(value, f.name), kind, replace) for f in dataclasses.fields(value)})
    if isinstance(value, (list, tuple)):
        return type(value)(_replace(v, kind, replace) for v in value)
    if isinstance(value, dict):
        return {k: _replace(v, kind, replace) for k, v in value.items()}
    return value


def _empty(folder: Path, value: Any) -> Any:
    return pl.DataFrame(schema=pl.read_ipc_schema(folder / value.names[0])) if isinstance(value, FrameFile) else value


def state_root() -> Path:
    """Where stage folders go: $INSTRUCT_PIPELINE_STAGES, else <state folder>/stages (absolute: tasks get paths)."""
    from flows import state_folder

    return Path(os.environ.get("INSTRUCT_PIPELINE_STAGES") or state_folder() / "stages").resolve()

"""The output folder: refuse a target that is not a build's, hold it while a build runs, replace it in one step.

Contract:
- ``check(mix, versioned)`` raises ``OutputError`` (one line naming the path) before any work unless the target
  ``<output.dir>/<name>`` is absent, an empty folder, or a previous build (a folder with a build's manifest.json;
  with ``--versioned``, a folder of such versions and a ``latest`` link); no source, reference, eval set or the
  mix file lies at or inside it; a folder can be created and written beside it; and its file system has at least
  the inputs' size free.
- ``hold(folder)`` is an exclusive lock on ``.<name>.lock`` beside the folder (``flock``: the kernel releases it
  when the holder dies, even by ``kill -9``), recording the holder's PID; a second build of the same folder stops
  at once naming it. On entry it clears what killed builds left: ``.<name>.tmp-<pid>`` and ``.<name>.old-<pid>``
  folders beside the target and inside it (a versioned root), and a target missing between the fallback's two
  renames is restored from the newest complete one.
- ``replace(tmp, target)`` makes ``target`` hold ``tmp``'s content in one atomic step (Linux ``renameat2`` with
  ``RENAME_EXCHANGE``: a reader sees the old build or the new one, never none), then deletes the old content.
  Where the kernel or file system lacks the exchange, two renames; a crash between them is repaired by ``hold``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from pipeline.config import Mix, ResolvedSource
from pipeline.io.writers import sha256_file
from schemas.report import BuildReport

MANIFEST = "manifest.json"
LATEST = "latest"
LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-\d+$")


class OutputError(OSError):
    """The output folder cannot be (safely) written; the message names the path and what to do."""


def check(mix: Mix, versioned: bool) -> None:
    target = mix.out_dir
    _check_inputs(target, mix)
    _check_existing(target, versioned)
    _check_writable(target, sum(_sizes(mix)))


def is_build(folder: Path) -> bool:
    """A folder a build wrote: its manifest.json parses and names the outputs."""
    try:
        manifest = orjson.loads((folder / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and {"spec_hash", "outputs"} <= manifest.keys()


def _check_existing(target: Path, versioned: bool) -> None:
    if not (target.exists() or target.is_symlink()):
        return
    if not target.is_dir():
        raise OutputError(f"output {target} exists and is not a folder; refusing to replace it "
                          "(choose another output.dir or name)")
    entries = [p for p in target.iterdir() if not LEFTOVER.match(p.name)]
    if not entries:
        return
    if versioned:
        strangers = [p for p in entries if not (p.name == LATEST and p.is_symlink()) and not is_build(p)]
        if strangers:
            raise OutputError(f"output {target} holds {strangers[0].name}, which is not a build version; "
                              "refusing to write versions there (choose another output.dir or name)")
        return
    if not is_build(target):
        raise OutputError(f"output {target} exists and is not a previous build (no build manifest.json); "
                          f"refusing to replace it (it holds {entries[0].name}; choose another output.dir or name)")


def _inputs(mix: Mix) -> Iterator[tuple[str, Path]]:
    yield "the mix file", mix.path
    for source in mix.sources:
        yield from _source_paths(f"source {source.spec.name}", source)
    for ref in mix.references:
        if ref.build is not None:
            yield f"dedup.against {ref.name}", ref.build
        elif ref.source is not None:
            yield from _source_paths(f"dedup.against {ref.name}", ref.source)
    for ref in mix.evals:
        if ref.build is not None:
            yield f"decontaminate.against {ref.name}", ref.build
        elif ref.source is not None:
            yield from _source_paths(f"decontaminate.against {ref.name}", ref.source)


def _source_paths(label: str, source: ResolvedSource) -> Iterator[tuple[str, Path]]:
    for path in (*source.files, source.folder):
        if path is not None:
            yield label, path


def _check_inputs(target: Path, mix: Mix) -> None:
    target = target.resolve()
    for label, path in _inputs(mix):
        resolved = path.resolve()
        if resolved == target or target in resolved.parents:
            raise OutputError(f"output {target} would replace {label} ({path}); an output folder must not hold "
                              "what the build reads (choose another output.dir or name)")


def _sizes(mix: Mix) -> Iterator[int]:
    for source in mix.sources:
        if source.kind == "files":
            yield from (p.stat().st_size for p in source.files)
        elif source.kind == "hf_folder" and source.folder is not None:
            yield from (p.stat().st_size for p in source.folder.rglob("*") if p.is_file())


def _check_writable(target: Path, needed: int) -> None:
    parent = target.parent
    existing = next(p for p in (parent, *parent.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        raise OutputError(f"output.dir {parent}: {existing} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{target.name}.probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        raise OutputError(f"output.dir {parent}: cannot write there ({err.strerror or err})") from None
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise OutputError(f"output.dir {parent}: {free / 2**20:,.1f} MB free, the inputs alone are "
                          f"{needed / 2**20:,.1f} MB; free some space or choose another output.dir")


@contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for one build (see the module docstring); nested holds by this process are free."""
    folder = folder.resolve()
    if folder in _held:
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = folder.with_name(f".{folder.name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise OutputError(f"output {folder} is being built by PID {holder}; wait for that build to end "
                              "(or stop it) before building the same name again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held.add(folder)
        recover(folder)
        try:
            yield
        finally:
            _held.discard(folder)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock; the empty lock file stays (removing it would race a new holder)


_held: set[Path] = set()


def recover(folder: Path) -> None:
    """Clear killed builds' leftovers of ``folder`` (and inside it, for a versioned root); restore a target that
    the fallback's two renames left missing. Call it only while holding the folder."""
    leftovers = _leftovers(folder.parent, folder.name)  # newest first; a new build (tmp) before an old one
    complete = [path for path in leftovers if (path / MANIFEST).is_file()]
    if complete and not folder.exists():
        complete[0].rename(folder)
        leftovers.remove(complete[0])
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    if folder.is_dir() and not folder.is_symlink():
        for path in folder.iterdir():
            if LEFTOVER.match(path.name) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def _leftovers(parent: Path, name: str) -> list[Path]:
    if not parent.is_dir():
        return []
    found = [(m["kind"], p) for p in parent.iterdir()
             if (m := LEFTOVER.match(p.name)) and m["name"] == name and p.is_dir()]
    return [p for _, p in sorted(found, key=lambda kp: (kp[0] != "tmp", -kp[1].stat().st_mtime))]


def temporary(target: Path, pid: int | None = None) -> Path:
    """Where this process (or ``pid``) writes ``target``'s next content: hidden beside it, named by the PID."""
    return target.with_name(f".{target.name}.tmp-{os.getpid() if pid is None else pid}")


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it replaces ``target`` (``replace``), on
    failure it is removed. A kill leaves it, and the next ``hold`` of the target clears it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace(tmp, target)


RENAME_EXCHANGE = 2
AT_FDCWD = -100


def replace(tmp: Path, target: Path) -> None:
    """Put ``tmp`` in ``target``'s place in one step and delete what was there."""
    if not (target.exists() or target.is_symlink()):
        tmp.rename(target)
        return
    if _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old content
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    tmp.rename(target)  # a crash before this line is repaired by the next hold()
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the platform or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


class EmptyBuildError(OutputError):
    """A build that would write no train record: the previous output is left as it was."""

    def __init__(self, report: BuildReport, target: Path) -> None:
        totals = report.totals
        reasons: dict[str, int] = {}
        for source in report.sources:
            for reason, count in source.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + count
        top = ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        super().__init__(
            f"no train record left: {totals.get('input', 0):,} records in, {totals.get('rejected', 0):,} rejected"
            f"{f' ({top})' if top else ''}, {totals.get('duplicates', 0):,} duplicates, "
            f"{totals.get('sampled_out', 0):,} sampled out, {totals.get('eval', 0):,} eval; nothing was written "
            f"and {target} was left as it was")
        self.report, self.target = report, target

    def __reduce__(self) -> tuple[type[EmptyBuildError], tuple[BuildReport, Path]]:
        return (EmptyBuildError, (self.report, self.target))


def damaged(folder: Path, verify: bool = False) -> str | None:
    """What is wrong with a build's output files against its manifest (None: all there, sizes as recorded, and
    with ``verify`` the sha256 too). A manifest without sizes is checked by hash."""
    manifest = orjson.loads((folder / MANIFEST).read_bytes())
    sizes: dict[str, int] = manifest.get("output_bytes") or {}
    for name, sha256 in manifest.get("outputs", {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if name in sizes and path.stat().st_size != sizes[name]:
            return f"{name} has {path.stat().st_size:,} bytes, the manifest says {sizes[name]:,}"
        if (verify or not sizes) and sha256_file(path) != sha256:
            return f"{name} does not match its sha256 in the manifest"
    return None

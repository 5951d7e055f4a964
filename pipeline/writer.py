"""The output writer: a build's result as its output folder (atomically), with the manifest that records the
spec and its hash, the input files with their sizes and sha256, the package versions and every output file's
size and sha256; written last, it marks the folder complete.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import orjson
import polars as pl

import pipeline
from pipeline import card, chat_format
from pipeline.config import Mix
from pipeline.io import output_folder, readers, signature_index, split_files, token_files, writers
from pipeline.io.split_files import SplitShard
from pipeline.report import html, markdown
from schemas.manifest import InputFile, Manifest
from schemas.mix import MixSpec, OutputSpec

if TYPE_CHECKING:
    from pipeline.build import BuildResult


PACKAGES = ("instruct-pipeline", "polars", "pyarrow", "pydantic", "datasets", "orjson", "pyyaml")


def spec_hash(spec: MixSpec) -> str:
    canonical = orjson.dumps(spec.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def input_files(mix: Mix) -> list[InputFile]:
    found = []
    for source in mix.sources:
        if source.kind == "hub":
            ref = f"{source.spec.hub}@{source.spec.revision or 'default'}"
            found.append(InputFile(source=source.spec.name, path=ref, bytes=None, sha256=None))
            continue
        # a files source lists its files; the other kind here, hf_folder, lists none but always has its folder
        files = source.files or tuple(sorted(p for p in cast(Path, source.folder).rglob("*") if p.is_file()))
        for path in files:
            found.append(InputFile(source=source.spec.name, path=readers.display_path(path, mix.root),
                                   bytes=path.stat().st_size, sha256=writers.input_sha256(path)))
    return found


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = pipeline.__version__ if name == "instruct-pipeline" else "not installed"
    return versions


# writes each (shard, path): the build's own loop (``write_split_shards``) or the Dask runner's worker tasks
SplitWriter = Callable[[list[tuple[SplitShard, Path]]], None]


def write_split_shard(frame: pl.DataFrame, shard: SplitShard, path: Path, output: OutputSpec) -> None:
    """One file of a split (``split_files``): ``shard``'s rows of the split's ``frame``."""
    writers.write_parquet(frame.slice(shard.start, shard.rows), path, output.compression, output.compression_level,
                          columns=chat_format.for_files)


def write_split_shards(result: BuildResult) -> SplitWriter:
    """The files of ``result``'s splits, written in turn by this process."""
    def write_all(jobs: list[tuple[SplitShard, Path]]) -> None:
        for shard, path in jobs:
            write_split_shard(getattr(result, shard.split), shard, path, result.mix.spec.output)

    return write_all


def write(result: BuildResult, target: Path | None = None, build_key: str | None = None,
          split_writer: SplitWriter | None = None) -> Path:
    """Write the output folder (atomically; default ``mix.out_dir``) and return its path. ``build_key``, the
    flow's content hash of everything the build read, goes into the manifest so an unchanged re-run can stop.
    ``split_writer`` writes the files of train and eval (default: one after another, here). The result's
    ``signatures`` are let go once the dedup index is written (None after)."""
    mix, spec = result.mix, result.mix.spec
    target = target or mix.out_dir
    if result.train.height == 0:
        raise output_folder.EmptyBuildError(result.report, target)
    with output_folder.atomic_folder(target) as tmp:
        compression, level = spec.output.compression, spec.output.compression_level
        if result.signatures is not None:  # first, then let go: 512 bytes a record not held while train is written
            output_ids = pl.concat([result.train["id"], result.eval["id"]])
            signature_index.write(tmp / signature_index.FOLDER, output_ids, result.signatures, spec.dedup, compression)
            result.signatures = None
        (split_writer or write_split_shards(result))(
            [(shard, tmp / shard.name) for name in ("train", "eval")
             for shard in split_files.shards(name, getattr(result, name).height, spec.output.shard_rows)])
        writers.write_parquet(result.rejected, tmp / "rejected.parquet", compression, level)
        writers.write_parquet(result.duplicates, tmp / "duplicates.parquet", compression, level)
        writers.write_json(result.report.model_dump(mode="json"), tmp / "report.json")
        (tmp / "report.md").write_text(markdown.render(result.report), encoding="utf-8")
        (tmp / "report.html").write_text(html.render(result.report), encoding="utf-8")
        (tmp / "README.md").write_text(card.render(result.report, mix), encoding="utf-8")
        if result.tokenized and result.files is not None:
            # the splits the tokenize stage wrote (eval also as validation), linked in, and
            # tokenized/record_ids.parquet: (split, row) -> record ids
            token_shards = {split: token_files.shard_paths(result.files, split) for split in result.tokenized}
            token_files.place(token_shards, tmp / "tokenized", result.report.spec_hash)
            ids = writers.record_ids(token_files.with_aliases(result.tokenized))
            writers.write_parquet(ids, tmp / "tokenized" / writers.RECORD_IDS, compression, level)
        files = [p for p in sorted(tmp.rglob("*")) if p.is_file()]
        manifest = Manifest(
            name=spec.name, seed=spec.seed, spec=spec.model_dump(mode="json", by_alias=True),
            spec_hash=result.report.spec_hash, inputs=input_files(mix), packages=package_versions(),
            counts=result.report.totals, mix_file=str(mix.path.resolve()), build_key=build_key,
            outputs={p.relative_to(tmp).as_posix(): writers.sha256_file(p) for p in files},
            output_bytes={p.relative_to(tmp).as_posix(): p.stat().st_size for p in files},
        )
        writers.write_json(manifest.model_dump(mode="json"), tmp / "manifest.json")  # last: marks completion
    return target

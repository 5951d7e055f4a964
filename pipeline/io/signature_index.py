"""A build's signature index (``dedup_index/``): the MinHash signature of every record it kept, so that a later
build can deduplicate against it without recomputing them.

    dedup_index/signatures.parquet   id, signature (Array(UInt32, num_perm)), in train-then-eval order
    dedup_index/params.json          everything the signatures depend on; a reader with other settings
                                     recomputes instead of mixing incompatible signatures

The signatures are datasketch ``MinHash`` hash values (affine32 scheme): ``MinHash(num_perm, seed,
hashvalues=row)`` loads one into datasketch, e.g. for its LSH or LSH Forest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl

from pipeline import minhash
from pipeline.io import writers
from schemas.mix import DedupSpec

FOLDER = "dedup_index"
FORMAT = 1


def params(settings: DedupSpec) -> dict[str, Any]:
    return {
        "format": FORMAT, "scheme": "datasketch-affine32", "shingle_hash": "xxh32-token-rounds",
        "token_pattern": minhash.TOKEN_PATTERN, "key": settings.key, "ngram": settings.ngram,
        "num_perm": settings.num_perm, "seed": settings.seed,
    }


def write(folder: Path, ids: pl.Series, signatures: pl.DataFrame, settings: DedupSpec, compression: str) -> None:
    """The index of the records ``ids`` names (the output's train then eval, repeats included), from
    ``signatures`` (id and signature of every record dedup kept), gathered a row group at a time: the index in
    the output's order is never held whole."""
    folder.mkdir()
    rows = ids.to_frame("id").join(signatures.select("id").with_row_index("_at"), on="id", how="left",
                                   maintain_order="left")
    signature = pl.col("signature").cast(pl.Array(pl.UInt32, settings.num_perm))

    def gathered(part: pl.DataFrame) -> pl.DataFrame:
        return pl.DataFrame({"id": part["id"], "signature": signatures["signature"].gather(part["_at"])}).select(
            "id", signature)

    writers.write_parquet(rows, folder / "signatures.parquet", compression, statistics=False, columns=gathered)
    text = orjson.dumps(params(settings), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (folder / "params.json").write_bytes(text + b"\n")


def read(build: Path, settings: DedupSpec) -> pl.DataFrame | None:
    """The index of an earlier build (id, signature) when its params match ``settings``, else None."""
    folder = build / FOLDER
    try:
        stored = orjson.loads((folder / "params.json").read_bytes())
    except FileNotFoundError:
        return None
    if stored != params(settings):
        return None
    return pl.read_parquet(folder / "signatures.parquet")

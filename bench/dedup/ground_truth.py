"""Exact ground truth for the dedup benchmark: every pair of records whose true Jaccard is at least 0.5.

    python bench/dedup/ground_truth.py --corpus bench/work/dedup/corpus-62002-seed0.parquet

A record's shingle set is ``set(pipeline.minhash.shingles(text, 5))`` over ``instruction + "\\n" + input +
"\\n" + output`` (case folded, punctuation removed, word 5-grams; CJK character 5-grams; a text of five words or
fewer is one shingle). Shingles get exact integer ids (a dict, no hashing), so the Jaccard values are exact.

Candidate pairs come from a sparse matrix product with the standard prefix filter, which loses no pair:
shingles are ordered rarest first, and a pair with J >= t shares at least ``|A| - ceil(t|A|) + 1`` of A's first
shingles with B's prefix of the same rule. The doc x prefix-shingle matrix P (scipy CSR, binary) is multiplied
by its transpose in row blocks (``P[s:e] @ P.T``, upper triangle kept) to bound memory; candidates also pass
the size filter ``min(|A|,|B|) >= t max(|A|,|B|)``. Each candidate's exact intersection is then the row-wise
dot product of the full doc x shingle matrix X, and J = inter / (|A| + |B| - inter).

The pairs (i_id, j_id, jaccard; i before j in corpus order) are cached next to the corpus as
``<corpus stem>.pairs-<sha256 of the corpus file, 16 hex>.parquet`` (with the build's timings in a ``.json``
beside it); ``load_pairs`` builds or reuses it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.minhash import shingles

MIN_JACCARD = 0.5
N_GRAM = 5


def corpus_texts(corpus: Path) -> tuple[list[str], list[str]]:
    """(ids, texts) of a corpus parquet, text = instruction + "\\n" + input + "\\n" + output."""
    frame = pl.read_parquet(corpus, columns=["id", "instruction", "input", "output"])
    text = pl.concat_str([pl.col(c).fill_null("") for c in ("instruction", "input", "output")], separator="\n")
    return frame["id"].to_list(), frame.select(text.alias("text"))["text"].to_list()


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cache_path(corpus: Path) -> Path:
    return corpus.with_name(f"{corpus.stem}.pairs-{file_hash(corpus)}.parquet")


def shingle_matrix(texts: list[str]) -> sp.csr_matrix:
    """Binary doc x shingle CSR matrix; shingle columns numbered rarest first (ties by first appearance)."""
    vocabulary: dict[str, int] = {}
    columns: list[np.ndarray] = []
    for text in texts:
        ids = {vocabulary.setdefault(s, len(vocabulary)) for s in shingles(text, N_GRAM)}
        columns.append(np.fromiter(ids, dtype=np.int64, count=len(ids)))
    del vocabulary
    sizes = np.fromiter((len(c) for c in columns), dtype=np.int64, count=len(columns))
    indptr = np.concatenate(([0], np.cumsum(sizes)))
    indices = np.concatenate(columns)
    del columns
    df = np.bincount(indices)
    rank = np.empty_like(df)
    rank[np.argsort(df, kind="stable")] = np.arange(len(df))  # rarest shingle -> column 0
    matrix = sp.csr_matrix((np.ones(len(indices), dtype=np.int32), rank[indices].astype(np.int32), indptr),
                           shape=(len(texts), len(df)))
    matrix.sort_indices()
    return matrix


def prefix_matrix(x: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    """Each row's first ``|A| - ceil(t|A|) + 1`` columns (the rarest shingles)."""
    sizes = np.diff(x.indptr)
    keep_len = sizes - np.ceil(threshold * sizes - 1e-9).astype(np.int64) + 1
    position = np.arange(x.nnz) - np.repeat(x.indptr[:-1], sizes)
    keep = position < np.repeat(keep_len, sizes)
    indptr = np.concatenate(([0], np.cumsum(np.minimum(keep_len, sizes))))
    return sp.csr_matrix((x.data[keep], x.indices[keep], indptr), shape=x.shape)


def exact_pairs(x: sp.csr_matrix, threshold: float = MIN_JACCARD, block: int = 2000,
                verify_chunk: int = 2_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j with Jaccard >= threshold: (i, j, jaccard) arrays."""
    sizes = np.diff(x.indptr).astype(np.int64)
    prefix = prefix_matrix(x, threshold)
    prefix_t = prefix.T.tocsr()
    found_i, found_j, found_jac = [], [], []
    for start in range(0, x.shape[0], block):
        stop = min(start + block, x.shape[0])
        hits = (prefix[start:stop] @ prefix_t).tocoo()
        i = hits.row.astype(np.int64) + start
        j = hits.col.astype(np.int64)
        small, large = np.minimum(sizes[i], sizes[j]), np.maximum(sizes[i], sizes[j])
        keep = (j > i) & (small >= threshold * large - 1e-9)
        i, j = i[keep], j[keep]
        for c in range(0, len(i), verify_chunk):
            ci, cj = i[c:c + verify_chunk], j[c:c + verify_chunk]
            inter = np.asarray(x[ci].multiply(x[cj]).sum(axis=1)).ravel().astype(np.int64)
            jac = inter / (sizes[ci] + sizes[cj] - inter)
            ok = jac >= threshold
            found_i.append(ci[ok])
            found_j.append(cj[ok])
            found_jac.append(jac[ok])
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_jac)


def build_pairs(corpus: Path) -> tuple[pl.DataFrame, dict[str, float]]:
    """Compute the pairs frame and timings (seconds per phase)."""
    started = time.perf_counter()
    ids, texts = corpus_texts(corpus)
    x = shingle_matrix(texts)
    shingled = time.perf_counter()
    i, j, jac = exact_pairs(x)
    done = time.perf_counter()
    id_array = np.array(ids, dtype=object)
    pairs = pl.DataFrame({"i_id": id_array[i].tolist(), "j_id": id_array[j].tolist(), "jaccard": jac},
                         schema={"i_id": pl.String, "j_id": pl.String, "jaccard": pl.Float64})
    timings = {"shingle_seconds": round(shingled - started, 1), "pairs_seconds": round(done - shingled, 1),
               "total_seconds": round(done - started, 1), "docs": len(ids), "shingles": x.shape[1],
               "pairs": pairs.height}
    return pairs, timings


def load_pairs(corpus: Path, rebuild: bool = False) -> tuple[pl.DataFrame, dict]:
    """The cached pairs of ``corpus`` (built first when missing); the info dict says whether it was cached."""
    path = cache_path(corpus)
    sidecar = path.with_suffix(".json")  # the timings of the build that wrote the cache
    if path.exists() and not rebuild:
        built = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        return pl.read_parquet(path), {"cache": str(path), "cached": True, **built}
    pairs, timings = build_pairs(corpus)
    tmp = path.with_suffix(".tmp")
    pairs.write_parquet(tmp)
    tmp.replace(path)
    sidecar.write_text(json.dumps(timings))
    return pairs, {"cache": str(path), "cached": False, **timings}


def copy_jaccard_histogram(corpus: Path, pairs: pl.DataFrame) -> dict[str, int]:
    """How the injected copies' Jaccard to their source spreads (pairs below 0.5 fall in '<0.5')."""
    copies = pl.read_parquet(corpus, columns=["id", "origin_id"]).filter(pl.col("origin_id").is_not_null())
    forward = pairs.rename({"i_id": "a", "j_id": "b"})
    both = pl.concat([forward, pairs.rename({"i_id": "b", "j_id": "a"}).select(forward.columns)])
    joined = copies.join(both, left_on=["id", "origin_id"], right_on=["a", "b"], how="left")
    edges = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    out = {"<0.5": int(joined["jaccard"].is_null().sum())}
    values = joined["jaccard"].drop_nulls().to_numpy()
    for low, high in pairwise(edges):
        out[f"{low}-{high}"] = int(((values >= low) & (values < high)).sum())
    out["1.0"] = int((values >= 1.0).sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--rebuild", action="store_true", help="ignore the cache")
    args = parser.parse_args()
    pairs, info = load_pairs(args.corpus, rebuild=args.rebuild)
    info["pairs_at"] = {str(t): int((pairs["jaccard"] >= t).sum()) for t in (0.5, 0.7, 0.8, 0.9)}
    info["copy_jaccard"] = copy_jaccard_histogram(args.corpus, pairs)
    print(json.dumps(info))


if __name__ == "__main__":
    main()

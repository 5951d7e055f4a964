"""Peer (b): datatrove's four-stage MinHash dedup (MinhashDedupSignature -> MinhashDedupBuckets ->
MinhashDedupCluster -> MinhashDedupFilter) on LocalPipelineExecutor, as in datatrove's minhash example.

    bench/.venv-peers/bin/python bench/dedup/peer_datatrove.py --corpus CORPUS --threshold 0.8 --out removed.parquet

Configuration (``MinhashConfig``): n_grams=5, datatrove's own text normalization (lower case, punctuation removed,
numbers normalized, diacritics folded) and spaCy English word tokenizer, 64-bit xxhash. Buckets x hashes per
bucket: 14 x 8 at 0.8 (datatrove's default, whose docstring gives a 0.924 inclusion probability at s=0.8), and
20 x 6 at 0.7 (the same ~0.92 inclusion probability at s=0.7); other thresholds get the smallest
buckets (<= 20) x hashes (5-10) with inclusion >= 0.92 at the threshold. ``--num-perm`` is ignored: datatrove's
signature length is buckets x hashes. datatrove checks no estimated Jaccard: any band collision is a duplicate.

Documents come from a custom reader (a plain function, as datatrove allows for pipeline steps) that gives rank r
of T tasks the r-th contiguous slice of the corpus; the signature and filter stages run 2 tasks on 2 workers (a
2-core machine), buckets one task per bucket on 2 workers, clustering one task. In each cluster datatrove keeps
the union-find root (union by size), not necessarily the first record in corpus order; the number of removals
is the same. The removed ids are the documents the filter stage did not forward. Working files go to a temporary
folder, deleted afterwards. Prints {"seconds": dedup wall time (all four stages), "docs": N}.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.utils.hashing import HashConfig
from runner import arguments, finish

TASKS = 2
WORKERS = 2
BANDS = {0.8: (14, 8), 0.7: (20, 6)}


def bands_for(threshold: float) -> tuple[int, int]:
    """(buckets, hashes per bucket) for a threshold: see the module docstring."""
    if threshold in BANDS:
        return BANDS[threshold]
    for buckets in range(1, 21):
        for hashes in range(10, 4, -1):
            if 1 - (1 - threshold ** hashes) ** buckets >= 0.92:
                return buckets, hashes
    return 20, 5


class CorpusReader:
    """Pipeline step: the documents of this rank's contiguous slice of the corpus parquet."""

    def __init__(self, corpus: Path) -> None:
        self.corpus = str(corpus)

    def __call__(self, data: object, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        frame = pl.read_parquet(self.corpus, columns=["id", "instruction", "input", "output"])
        start, stop = frame.height * rank // world_size, frame.height * (rank + 1) // world_size
        frame = frame.slice(start, stop - start)
        text = pl.concat_str([pl.col(c).fill_null("") for c in ("instruction", "input", "output")],
                             separator="\n")
        for doc_id, doc_text in zip(frame["id"].to_list(), frame.select(text.alias("t"))["t"].to_list(), strict=True):
            yield Document(text=doc_text, id=doc_id)


class KeptIds:
    """Pipeline step after the filter: writes the ids it forwards (the kept documents) to kept_<rank>.txt."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def __call__(self, data: Iterator[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        with open(Path(self.folder) / f"kept_{rank:05d}.txt", "w", encoding="utf-8") as out:
            for doc in data:
                out.write(doc.id + "\n")
                yield doc


def dedup(corpus: Path, threshold: float, work: Path) -> set[str]:
    """Run the four stages under ``work``; return the set of kept ids."""
    buckets, hashes = bands_for(threshold)
    config = MinhashConfig(n_grams=5, num_buckets=buckets, hashes_per_bucket=hashes,
                           hash_config=HashConfig(precision=64))
    reader = CorpusReader(corpus)
    kept_folder = work / "kept"
    kept_folder.mkdir(parents=True)
    stages = [
        LocalPipelineExecutor(
            pipeline=[reader, MinhashDedupSignature(output_folder=str(work / "signatures"), config=config)],
            tasks=TASKS, workers=WORKERS, logging_dir=str(work / "logs" / "signatures")),
        LocalPipelineExecutor(
            pipeline=[MinhashDedupBuckets(input_folder=str(work / "signatures"), output_folder=str(work / "buckets"),
                                          config=config)],
            tasks=buckets, workers=WORKERS, logging_dir=str(work / "logs" / "buckets")),
        LocalPipelineExecutor(
            pipeline=[MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"),
                                          config=config)],
            tasks=1, logging_dir=str(work / "logs" / "clusters")),
        LocalPipelineExecutor(
            pipeline=[reader, MinhashDedupFilter(input_folder=str(work / "remove_ids")), KeptIds(kept_folder)],
            tasks=TASKS, workers=WORKERS, logging_dir=str(work / "logs" / "filter")),
    ]
    for stage in stages:
        stage.run()
    kept: set[str] = set()
    for path in kept_folder.glob("kept_*.txt"):
        kept.update(path.read_text(encoding="utf-8").split("\n"))
    kept.discard("")
    return kept


def main() -> None:
    parser = arguments(__doc__)  # --num-perm is ignored: datatrove's signature is buckets x hashes per bucket
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary working folder")
    args = parser.parse_args()
    ids = pl.read_parquet(args.corpus, columns=["id"])["id"].to_list()
    work = Path(tempfile.mkdtemp(prefix="datatrove-minhash-", dir=args.workdir))
    try:
        started = time.perf_counter()
        kept = dedup(args.corpus.resolve(), args.threshold, work)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    removed = [doc_id for doc_id in ids if doc_id not in kept]
    buckets, hashes = bands_for(args.threshold)
    finish(removed, args.out, seconds, len(ids), buckets=buckets, hashes_per_bucket=hashes)


if __name__ == "__main__":
    main()

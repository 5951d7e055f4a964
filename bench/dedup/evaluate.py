"""Score a dedup run (the ids it removed) against the exact ground-truth pairs of ground_truth.py.

    python bench/dedup/evaluate.py --corpus CORPUS --removed removed.parquet --threshold 0.8

- precision: the share of removed records that have at least one partner with true Jaccard >= 0.5 (removing a
  record that is at least half-similar to another counts as right, whatever the threshold);
- recall: ground-truth clusters are the connected components of the pairs with J >= threshold; a cluster of k
  records calls for k - 1 removals, and credits min(removed in the cluster, k - 1);
  recall = sum(credited) / sum(k - 1);
- F1: their harmonic mean.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

PRECISION_JACCARD = 0.5


def score(removed_ids: Iterable[str], pairs: pl.DataFrame, threshold: float) -> dict[str, float | int]:
    """Precision, recall and F1 of ``removed_ids`` against ``pairs`` (i_id, j_id, jaccard) at ``threshold``."""
    removed = set(removed_ids)
    near = pairs.filter(pl.col("jaccard") >= PRECISION_JACCARD)
    has_partner = set(near["i_id"].to_list()) | set(near["j_id"].to_list())
    tp = len(removed & has_partner)
    precision = tp / len(removed) if removed else 1.0

    truth = pairs.filter(pl.col("jaccard") >= threshold)
    nodes = pl.concat([truth["i_id"], truth["j_id"]]).unique().to_list()
    index = {node: k for k, node in enumerate(nodes)}
    rows = np.fromiter((index[a] for a in truth["i_id"].to_list()), dtype=np.int64, count=truth.height)
    cols = np.fromiter((index[b] for b in truth["j_id"].to_list()), dtype=np.int64, count=truth.height)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(nodes), len(nodes)))
    n_clusters, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels, minlength=n_clusters)
    removed_per_cluster = np.bincount(
        np.fromiter((labels[index[r]] for r in removed if r in index), dtype=np.int64), minlength=n_clusters)
    needed = int((sizes - 1).sum())
    credited = int(np.minimum(removed_per_cluster, sizes - 1).sum())
    recall = credited / needed if needed else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "removed": len(removed), "tp": tp,
            "false_removals": len(removed) - tp, "clusters": int(n_clusters), "needed": needed,
            "credited": credited}


def main() -> None:
    import ground_truth

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--removed", type=Path, required=True, help="parquet with one column `id`")
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    pairs, _ = ground_truth.load_pairs(args.corpus)
    removed = pl.read_parquet(args.removed)["id"].to_list()
    print(json.dumps(score(removed, pairs, args.threshold)))


if __name__ == "__main__":
    main()

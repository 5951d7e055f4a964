"""What every dedup runner shares (bench/dedup/ours.py and the peer_*.py scripts): the common command line, the
corpus as (ids, texts), the whitespace shingles a typical user writes, and the closing JSON line. Standard library
and polars only, so the runners can import it from the project's venv and from bench/.venv-peers alike (a script's
own folder is on sys.path)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import polars as pl

TEXT_FIELDS = ("instruction", "input", "output")


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """``RUNNER --corpus C --threshold T --out removed.parquet [--num-perm N]``; a runner may add its own."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-perm", type=int, default=128)
    return parser


def read_corpus(corpus: Path) -> tuple[list[str], list[str]]:
    """(ids, texts), text = instruction + "\\n" + input + "\\n" + output."""
    frame = pl.read_parquet(corpus, columns=["id", *TEXT_FIELDS])
    text = pl.concat_str([pl.col(c).fill_null("") for c in TEXT_FIELDS], separator="\n")
    return frame["id"].to_list(), frame.select(text.alias("text"))["text"].to_list()


def word_shingles(text: str, n: int = 5) -> list[str]:
    """``text.split()`` word n-grams joined by a space; a text of fewer than n words is one shingle."""
    words = text.split()
    return [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))]


def finish(removed: list[str], out: Path, seconds: float, docs: int, **extra: Any) -> None:
    """Write the removed ids and print the JSON line run_all.py reads."""
    pl.DataFrame({"id": removed}, schema={"id": pl.String}).write_parquet(out)
    print(json.dumps({"seconds": round(seconds, 3), "docs": docs, "removed": len(removed), **extra}))

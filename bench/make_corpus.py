"""Write a benchmark corpus made by repeating the 52,002 Alpaca records of ../shared/data/alpaca-en.

    python bench/make_corpus.py --records 1000000 --files 20 --out bench/work/alpaca-1m

Files are JSON lists (indent=2, like the originals) of equal size; the records repeat in order, so the corpus
has the defects of the original at the same rates (empty outputs, placeholder inputs).
"""

from __future__ import annotations

import argparse
import json
from itertools import cycle, islice
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def alpaca_records() -> list[dict]:
    records: list[dict] = []
    for path in sorted((SHARED / "alpaca-en").glob("*.json")):
        records += json.loads(path.read_text(encoding="utf-8"))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/work/alpaca-1m"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.json"):
        old.unlink()
    source = cycle(alpaca_records())
    per_file = -(-args.records // args.files)
    written = 0
    for i in range(args.files):
        batch = list(islice(source, min(per_file, args.records - written)))
        path = args.out / f"part-{i:03d}.json"
        path.write_text(json.dumps(batch, ensure_ascii=False, indent=2), encoding="utf-8")
        written += len(batch)
    size = sum(p.stat().st_size for p in args.out.glob("*.json"))
    print(f"{written} records in {args.files} files, {size / 1e6:.1f} MB, under {args.out}")


if __name__ == "__main__":
    main()

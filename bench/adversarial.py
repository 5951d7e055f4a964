"""The adversarial pass of issue #16, re-run: each of its 15 items tried as a hostile or careless user would,
through the real CLI (`.venv/bin/pipeline` as a subprocess), each scenario in a fresh temporary folder with its
own INSTRUCT_PIPELINE_STATE and no PREFECT_API_URL; `--runner direct` where the flow is not the point, the
default flow runner (Prefect's temporary server) for items 3, 5 and 14. Prints one table row per scenario:
what is expected now, what was observed (exit code, key line, what happened to the files), PASS / FAIL / SKIP
and the wall time; exits 1 if any scenario failed.

    .venv/bin/python bench/adversarial.py                # all scenarios, ~4-5 min on 2 cores
    .venv/bin/python bench/adversarial.py --only 1,13c   # items or scenario ids
    .venv/bin/python bench/adversarial.py --keep         # keep the temporary folders (their path is printed)

Mounting tmpfs file systems (13b read-only, 13c disk full) needs root; elsewhere those scenarios are SKIPs.
Ctrl-C (14a) is SIGINT to the build's process group, as a terminal sends it; tests/test_output_safety.py signals
the CLI process alone. The scenarios' checks mirror the tests named in each item of the issue.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = str(ROOT / ".venv" / "bin" / "pipeline") if (ROOT / ".venv" / "bin" / "pipeline").exists() \
    else str(Path(sys.executable).with_name("pipeline"))
SHARED = ROOT.parent / "shared"
TOKENIZER = SHARED / "tokenizers" / "llama-2"
ALPACA = SHARED / "data" / "alpaca-en" / "alpaca_data-00000-03252.json"
ROWS = [{"instruction": f"Name fact number {i}.", "input": "", "output": f"Fact {i}: {i * 7} is a number."}
        for i in range(40)]
EMAIL, PHONE, CN_ID, CARD = "li.wei@example.org", "13912345678", "11010519491231002X", "4111 1111 1111 1111"
SECRETS = (EMAIL, PHONE, CN_ID, CARD, CARD.replace(" ", ""))
# tests/test_decontaminate.py: two different 13-token windows whose old 32-bit hashes are equal (birthday search)
EVAL_WINDOW = "happy paper w5 w1 music w176 w68 w111 w194 w78 w119 w157 w169"
CLEAN_WINDOW = "w33 w112 w174 w10 w169 w85 w67 w42 w140 w142 w46 w68 w168"
RECORDS_5 = 400_000  # the first build must outlast the second's start of its own temporary server (~15 s)
SURROGATE = '{"instruction": "a \\ud800 b", "input": "", "output": "c"}'


class Skip(Exception):
    """The scenario cannot run here (e.g. mounting a tmpfs needs root)."""


@dataclass
class Run:
    code: int | None  # None: killed at its timeout
    output: str
    seconds: float

    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]

    def key(self, *needles: str, span: int = 1) -> str:
        """'exit N: <the first line holding a needle (and the span-1 lines after it), else the last line>',
        shortened."""
        lines = self.lines()
        at = next((k for k, x in enumerate(lines) for n in needles if n in x), len(lines) - 1)
        line = " ".join(" ".join(lines[at:at + span]).split()) if lines else "(no output)"
        line = re.sub(r"^\[[\d/ :]+\] ", "", line)  # a log line's time stamp
        return f"exit {self.code if self.code is not None else 'none (killed: hung)'}: " \
               f"{line[:170] + '...' if len(line) > 170 else line}"


class Box:
    """One scenario's temporary folder: files, mix.yaml, and the CLI run inside it."""

    def __init__(self, root: Path) -> None:
        self.root, self.logs = root, 0
        root.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PREFECT_API_URL", "PREFECT_HOME", "INSTRUCT_PIPELINE_STAGES")}
        self.env.update(INSTRUCT_PIPELINE_TOKENIZER=str(TOKENIZER), INSTRUCT_PIPELINE_STATE=str(root / "state"))

    def path(self, relative: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def jsonl(self, relative: str, rows: list) -> Path:  # type: ignore[type-arg]
        path = self.path(relative)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path

    def json(self, relative: str, rows: list) -> Path:  # type: ignore[type-arg]
        path = self.path(relative)
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
        return path

    def mix(self, spec: dict, relative: str = "mix.yaml") -> Path:  # type: ignore[type-arg]
        """A mix.yaml: one source a.jsonl, output out/, no tokenization, unless ``spec`` says otherwise."""
        full = {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "tokenize": {"enabled": False},
                "output": {"dir": "out"}, **spec}
        path = self.path(relative)
        path.write_text(yaml.safe_dump(full, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    def spawn(self, *args: str, new_session: bool = False) -> tuple[subprocess.Popen[bytes], Path]:
        """`pipeline ARGS` in the background; its output goes to a log file (a pipe could fill and block it)."""
        self.logs += 1
        log = self.path(f"logs/{self.logs}.log")
        with log.open("wb") as out:
            proc = subprocess.Popen([PIPELINE, *args], cwd=self.root, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=new_session)
        return proc, log

    def finish(self, proc: subprocess.Popen[bytes], log: Path, started: float, timeout: float) -> Run:
        try:
            code: int | None = proc.wait(timeout=max(0.1, started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
            code = None
        output = log.read_text(encoding="utf-8", errors="replace").replace(str(self.root), "$T")
        return Run(code, output, time.monotonic() - started)

    def cli(self, *args: str, timeout: float = 180) -> Run:
        started = time.monotonic()
        return self.finish(*self.spawn(*args), started, timeout)

    def build(self, mix: Path, *extra: str, flow: bool = False, timeout: float = 180) -> Run:
        return self.cli("build", "--mix", str(mix), *(() if flow else ("--runner", "direct")), *extra,
                        timeout=timeout)


def kill_tree(pid: int) -> None:
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with_process(proc.kill)


def with_process(call: Callable[[], object]) -> None:
    try:
        call()
    except psutil.Error:
        pass


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes still running (a zombie whose parent is gone counts as ended)."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.NoSuchProcess:
            pass
    return left


def wait_gone(procs: list[psutil.Process], limit: float) -> tuple[float, list[psutil.Process]]:
    """Seconds until every process in ``procs`` ended (or ``limit``), and those still alive."""
    started = time.monotonic()
    while (left := alive(procs)) and time.monotonic() - started < limit:
        time.sleep(0.05)
    return time.monotonic() - started, left


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` ({} when absent)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def intact(before: dict[str, str], folder: Path) -> str:
    return "intact" if before and tree(folder) == before else "CHANGED"


def no_traceback(*runs: Run) -> bool:
    return not any("Traceback" in run.output for run in runs)


def leaked(frame: pl.DataFrame) -> list[str]:
    text = json.dumps(frame.to_dicts(), ensure_ascii=False, default=str)
    text += text.replace("\\n", "\n")
    return [s for s in SECRETS if s in text]


def alpaca(n: int) -> list[dict[str, str]]:
    return json.loads(ALPACA.read_text(encoding="utf-8"))[:n]


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], limit: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(step)
    return False


def lock_holder(box: Box, name: str = "t") -> str:
    lock = box.root / "out" / f".{name}.lock"
    return lock.read_text().strip() if lock.exists() else ""


# ---------------------------------------------------------------------------------------------- 1. the target


def s1a(box: Box) -> tuple[bool, str]:
    box.jsonl("data/a.jsonl", ROWS)
    box.path("data/NOTES.txt").write_text("my notes")
    before = tree(box.root / "data")
    run = box.build(box.mix({"name": "data", "sources": [{"name": "s", "path": "data/a.jsonl"}],
                             "output": {"dir": "."}}))
    return (run.code == 2 and "would replace source" in run.output and tree(box.root / "data") == before,
            f"{run.key('would replace')}; data/ {intact(before, box.root / 'data')}")


def s1b(box: Box) -> tuple[bool, str]:
    box.jsonl("project/a.jsonl", ROWS)
    mix = box.mix({"name": "project", "output": {"dir": ".."}}, "project/mix.yaml")
    before = tree(box.root / "project")
    run = box.build(mix)
    return (run.code == 2 and "would replace" in run.output and tree(box.root / "project") == before,
            f"{run.key('would replace')}; project/ {intact(before, box.root / 'project')}")


def s1c(box: Box) -> tuple[bool, str]:
    source = box.jsonl("train.json", ROWS)
    before = source.read_bytes()
    run = box.build(box.mix({"name": "train.json", "sources": [{"name": "s", "path": "train.json"}],
                             "output": {"dir": "."}}))
    kept = source.is_file() and source.read_bytes() == before
    return (run.code == 2 and "would replace source" in run.output and kept,
            f"{run.key('would replace')}; train.json {'intact (a file)' if kept else 'CHANGED'}")


def s1d(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    box.path("out/t/thesis.tex").write_text("years of work")
    before = tree(box.root / "out" / "t")
    run = box.build(box.mix({}))
    return (run.code == 2 and "not a previous build" in run.output and tree(box.root / "out" / "t") == before,
            f"{run.key('not a previous build')}; out/t/ {intact(before, box.root / 'out' / 't')}")


# ------------------------------------------------------------------------------------ 2. nothing replaces good


def s2a(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    mix = box.mix({})
    first = box.build(mix)
    before = tree(box.root / "out" / "t")
    box.jsonl("a.jsonl", [{**row, "output": " "} for row in ROWS])  # every output empty: nothing to keep
    run = box.build(mix)
    return (first.code == 0 and run.code == 1 and "no train record left" in run.output and no_traceback(run)
            and tree(box.root / "out" / "t") == before,
            f"{run.key('no train record left')}; previous build {intact(before, box.root / 'out' / 't')}")


def s2b(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    first = box.build(box.mix({}))
    before = tree(box.root / "out" / "t")
    run = box.build(box.mix({"dedup": {"against": ["out/t"]}}))
    return (first.code == 0 and run.code == 2 and "would replace dedup.against" in run.output
            and tree(box.root / "out" / "t") == before,
            f"{run.key('would replace')}; previous build {intact(before, box.root / 'out' / 't')}")


# --------------------------------------------------------------------------------- 3. a broken output (flow)


def s3(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS[:30])
    mix = box.mix({"tokenize": {"enabled": True}})
    out = box.root / "out" / "t"
    first = box.build(mix, flow=True)
    before = tree(out)
    train = out / "train.parquet"
    train.write_bytes(train.read_bytes()[:200])
    shutil.rmtree(out / "tokenized", ignore_errors=True)
    second = box.build(mix, flow=True)
    rebuilt = second.code == 0 and "unchanged" not in second.output and tree(out) == before
    data = train.read_bytes()
    train.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    plain = box.build(mix, flow=True)
    verify = box.build(mix, "--verify", flow=True)
    verified = verify.code == 0 and "unchanged" not in verify.output and tree(out) == before
    return (first.code == 0 and bool(before) and rebuilt and verified,
            f"truncated + tokenized/ deleted: {second.key('rebuilding', 'unchanged')}, files "
            f"{'back to the original hashes' if rebuilt else 'NOT restored'}; bit flip: without --verify "
            f"{'unchanged (sizes only, as documented)' if 'unchanged' in plain.output else 'rebuilt'}, with --verify "
            f"{verify.key('rebuilding', 'unchanged')}, files {'restored' if verified else 'NOT restored'}")


# ------------------------------------------------------------------------------------ 4. SIGTERM, leftovers


def s4(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    mix = box.mix({})
    out = box.root / "out"
    first = box.build(mix)
    before = tree(out / "t")
    box.jsonl("a.jsonl", [{"instruction": f"Repeat {i}", "input": "", "output": f"Step {i}: add {i} apples to "
                           f"{i + 1} pears and count {2 * i + 1} fruits in the basket."} for i in range(100_000)])
    started = time.monotonic()
    proc, log = box.spawn("build", "--mix", str(mix), "--runner", "direct", "--workers", "1")
    tmp = out / f".t.tmp-{proc.pid}"
    caught = wait_for(lambda: (tmp / "train.parquet").exists(), proc, 120, 0.002)
    if caught:
        os.kill(proc.pid, signal.SIGTERM)
    stopped = box.finish(proc, log, started, 60)
    tmp_left = sorted(p.name for p in out.iterdir() if ".tmp-" in p.name)
    previous = intact(before, out / "t")
    stopped_ok = caught and stopped.code == 130 and stopped.output.count("interrupted") == 1 and not tmp_left \
        and no_traceback(stopped) and previous == "intact"
    for name in (".t.tmp-99999", ".t.old-99999"):  # as kill -9 during a write / a fallback swap leaves them
        box.path(f"out/{name}/train.parquet").write_bytes(b"half-written")
    box.jsonl("a.jsonl", ROWS[:30])
    polls, missing, done = [0], [0], threading.Event()

    def watch() -> None:  # the target must exist at every instant of the replacing build
        while not done.is_set():
            polls[0] += 1
            missing[0] += not (out / "t" / "manifest.json").is_file()
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    again = box.build(mix)
    done.set()
    watcher.join()
    left = sorted(p.name for p in out.iterdir() if ".tmp-" in p.name or ".old-" in p.name)
    return (first.code == 0 and stopped_ok and again.code == 0 and not left and missing[0] == 0,
            f"SIGTERM {'while writing' if caught else 'NOT SENT (build ended first)'}: "
            f"{stopped.key('interrupted')} ({stopped.output.count('interrupted')} line); "
            f"tmp left: {tmp_left or 'none'}; "
            f"previous build {previous}; next build: exit {again.code}, planted .t.tmp-99999 and "
            f".t.old-99999 {'cleared' if not left else f'LEFT: {left}'}; target missing in {missing[0]} of "
            f"{polls[0]:,} polls")


# ---------------------------------------------------------------------------- 5. concurrent builds (flow)


def s5(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", [{"instruction": f"Repeat {i}", "input": "", "output": f"Step {i}: count {i} apples "
                           f"and {i + 1} pears."} for i in range(RECORDS_5)])
    mix = box.mix({})
    started = time.monotonic()
    first, first_log = box.spawn("build", "--mix", str(mix))
    held = wait_for(lambda: lock_holder(box) == str(first.pid), first, 240)
    second = box.cli("build", "--mix", str(mix), timeout=240)
    first_still_running = first.poll() is None
    one = box.finish(first, first_log, started, 400)
    report = json.loads((box.root / "out" / "t" / "report.json").read_text()) if one.code == 0 else {}
    errors = [e for e in ("FileNotFoundError", "ENOTEMPTY", "Traceback") if e in one.output] + \
        [e for e in ("FileNotFoundError", "ENOTEMPTY") if e in second.output]
    logged = "Traceback" in second.output  # Prefect logs the flow's exception before the CLI's one line
    return (held and first_still_running and second.code == 2 and f"is being built by PID {first.pid}" in
            second.output and one.code == 0 and report.get("totals", {}).get("train", 0) > 0 and not errors,
            f"second: {second.key('error: ')} (first is PID {first.pid}"
            f"{'' if first_still_running else ', INCONCLUSIVE: it had already ended'}; {len(second.lines())} lines of "
            f"output{', with a traceback Prefect logged' if logged else ''}); first: exit {one.code} in "
            f"{one.seconds:.0f} s, train {report.get('totals', {}).get('train', 0):,}; errors: {errors or 'none'}")


# ---------------------------------------------------------------------------------- 6-8. wrong output


def s6(box: Box) -> tuple[bool, str]:
    sys.path.insert(0, str(ROOT))
    from pipeline import minhash  # the premise: the pair still collides under the old 32-bit hash

    old = minhash.shingle_sets(pl.Series([EVAL_WINDOW, CLEAN_WINDOW]), 13).hashes
    box.jsonl("evals.jsonl", [{"instruction": EVAL_WINDOW, "input": "", "output": "-"}])
    box.jsonl("a.jsonl", [{"instruction": f"Please do this: {CLEAN_WINDOW}.", "input": "", "output": "An answer."},
                          {"instruction": f"Copied: {EVAL_WINDOW}, thanks.", "input": "", "output": "Another one."},
                          *ROWS[:5]])
    run = box.build(box.mix({"decontaminate": {"against": ["evals.jsonl"]}}))
    train = pl.read_parquet(box.root / "out" / "t" / "train.parquet") if run.code == 0 else pl.DataFrame()
    rejected = pl.read_parquet(box.root / "out" / "t" / "rejected.parquet") if run.code == 0 else pl.DataFrame()
    gone = rejected.filter(pl.col("reason").str.starts_with("contaminated"))["id"].to_list() if run.code == 0 else []
    clean_kept = run.code == 0 and "s#0" in train["id"].to_list()
    return (old[0] == old[1] and clean_kept and gone == ["s#1"],
            f"exit {run.code}; old 32-bit hashes equal: {old[0] == old[1]}; clean record s#0 "
            f"{'kept in train' if clean_kept else 'DROPPED'}; contaminated: {gone} (the real copy)")


def s7(box: Box) -> tuple[bool, str]:
    rows = alpaca(2000)
    with box.path("a.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["instruction", "input", "output"])
        writer.writerows([r["instruction"], r["input"], r["output"]] for r in rows)
    run = box.build(box.mix({"sources": [{"name": "s", "path": "a.csv"}]}))
    out = box.root / "out" / "t"
    reasons = pl.read_parquet(out / "rejected.parquet")["reason"].value_counts(sort=True) if run.code == 0 else None
    wrong = 0 if reasons is None else int(reasons.filter(pl.col("reason") == "wrong_type:input")["count"].sum())
    empty = sum(1 for r in rows if r["input"] == "")
    kept_empty = pl.read_parquet(out / "train.parquet").filter(pl.col("input") == "").height if run.code == 0 else 0
    top = "none" if reasons is None else ", ".join(f"{r} {c}" for r, c in reasons.head(3).iter_rows())
    return (run.code == 0 and wrong == 0 and kept_empty > 0.9 * empty,
            f"exit {run.code}; {empty:,} rows with an empty input cell: wrong_type:input {wrong}, "
            f"{kept_empty:,} in train with input ''; rejected: {top}")


def s8a(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    mix = box.path("mix.yaml")
    mix.write_text("name: t\nsources:\n  - name: s\n    path: a.jsonl\npii:\n  action: quarantine\n  action: flag\n")
    run = box.build(mix)
    return (run.code == 2 and "line 7: duplicate key 'pii.action'" in run.output and len(run.lines()) == 1,
            run.key("duplicate key"))


def s8b(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    run = box.build(box.mix({"mixture": {"size": True}}))
    return (run.code == 2 and "mixture.size" in run.output and "boolean true" in run.output,
            run.key("invalid mix spec", span=2))


def s8c(box: Box) -> tuple[bool, str]:
    box.json("a.json", alpaca(2000))
    run = box.build(box.mix({"sources": [{"name": "s", "path": "a.json"}], "split": {"eval": 50000}}))
    warning = next((line for line in run.lines() if "train is empty" in line), "NO WARNING")
    return (run.code == 1 and "train is empty" in warning and "no train record left" in run.output,
            f"warning: {' '.join(warning[warning.find('split:'):].split())}; then {run.key('no train record left')}")


def s8d(box: Box) -> tuple[bool, str]:
    box.json("a.json", alpaca(2000))
    run = box.build(box.mix({"sources": [{"name": "s", "path": "a.json"}], "split": {"eval": 50000},
                             "mixture": {"strict": True}}))
    return run.code == 2 and "split guard failed" in run.output and "train is empty" in run.output, \
        run.key("split guard", span=2)


# ------------------------------------------------------------------------------- 9-11. PII, files, reports


def chat_mix(box: Box, pii: dict) -> Path:  # type: ignore[type-arg]
    def convo(system: str | None, turns: list[tuple[str, str]]) -> dict:  # type: ignore[type-arg]
        row: dict = {"conversations": [t for q, a in turns for t in ({"from": "human", "value": q},  # type: ignore[type-arg]
                                                                       {"from": "gpt", "value": a})]}
        return {**row, "system": system} if system else row

    box.json("chat.json", [
        convo(f"You are a support agent; escalate to {EMAIL}.", [("Hello", "Hi, how can I help?"),
                                                                 ("Where is my parcel?", "It ships today.")]),
        convo(None, [(f"My phone is {PHONE} and my card {CARD}.", "Thanks, noted."),
                     ("And the ID on file?", f"It is {CN_ID}."), ("Goodbye", "Goodbye, have a nice day.")]),
        convo("Be brief.", [("What is the capital of France?", "Paris.")]),
        convo(f"Mail {EMAIL} or call {PHONE}", [("Say nothing", "")]),  # rejected (empty output), PII in its row
    ])
    return box.mix({"sources": [{"name": "chat", "path": "chat.json"}], "pii": pii,
                    "tokenize": {"enabled": True, "template": "llama2-chat", "cutoff_len": 512}})


def decoded_tokens(folder: Path) -> list[str]:
    import pyarrow as pa
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TOKENIZER / "tokenizer.json"))
    texts = []
    for arrow in sorted((folder / "tokenized" / "train").glob("*.arrow")):
        with pa.memory_map(str(arrow)) as source:
            table = pa.ipc.open_stream(source).read_all()
        texts += [tokenizer.decode(ids) for ids in table.column("input_ids").to_pylist()]
    return texts


def s9a(box: Box) -> tuple[bool, str]:
    run = box.build(chat_mix(box, {"action": "redact", "redact_rejected": True}))
    out = box.root / "out" / "t"
    if run.code != 0:
        return False, run.key("error")
    train, rejected = pl.read_parquet(out / "train.parquet"), pl.read_parquet(out / "rejected.parquet")
    tokens = decoded_tokens(out)
    in_tokens = [s for s in SECRETS if any(s in text for text in tokens)]
    return (not leaked(train) and not in_tokens and not leaked(rejected) and len(tokens) == train.height > 0,
            f"{run.key('pii:')}; PII found in train.parquet ({train.height} rows): {leaked(train) or 'none'}, "
            f"tokenized/ (decoded): {in_tokens or 'none'}, rejected.parquet ({rejected.height} row(s)): "
            f"{leaked(rejected) or 'none'}")


def s9b(box: Box) -> tuple[bool, str]:
    run = box.build(chat_mix(box, {"action": "quarantine"}))
    out = box.root / "out" / "t"
    if run.code != 0:
        return False, run.key("error")
    train, rejected = pl.read_parquet(out / "train.parquet"), pl.read_parquet(out / "rejected.parquet")
    pii = sorted(rejected.filter(pl.col("reason").str.starts_with("pii:"))["reason"].to_list())
    return (len(pii) == 2 and train.height == 1 and not leaked(train),
            f"exit 0; quarantined: {pii}; train: {train.height} row(s), PII in it: {leaked(train) or 'none'}")


def s10a(box: Box) -> tuple[bool, str]:
    box.json("data/a.json", alpaca(20))
    (box.root / "data" / "passwd.jsonl").symlink_to("/etc/passwd")
    os.mkfifo(box.root / "data" / "pipe.jsonl")
    run = box.build(box.mix({"sources": [{"name": "s", "path": "data"}]}), timeout=60)
    first_line = Path("/etc/passwd").read_text().splitlines()[0]
    rejected = pl.read_parquet(box.root / "out" / "t" / "rejected.parquet") if run.code == 0 else pl.DataFrame()
    text = json.dumps(rejected.to_dicts(), default=str)
    copied = first_line in text or "passwd" in text
    return (run.code == 0 and "passwd.jsonl" in run.output and "FIFO" in run.output and not copied,
            f"{run.key('passwd.jsonl')}; /etc/passwd in rejected.parquet: {'YES' if copied else 'no'}; "
            f"FIFO in the folder: {'skipped with a warning' if 'FIFO' in run.output else 'no warning'}")


def s10b(box: Box) -> tuple[bool, str]:
    os.mkfifo(box.root / "pipe.jsonl")
    run = box.build(box.mix({"sources": [{"name": "s", "path": "pipe.jsonl"}]}), timeout=30)
    return (run.code == 2 and "is a FIFO" in run.output and run.seconds < 15,
            f"{run.key('FIFO')} after {run.seconds:.1f} s")


def s11(box: Box) -> tuple[bool, str]:
    script = "<script>alert(1)</script>"
    box.jsonl("hostile.jsonl", [{"instruction": script, "input": "", "output": f"Answer {k}: a dialog."}
                                for k in range(2)] + ROWS[:5])
    run = box.cli("audit", "hostile.jsonl", "--out", "audit", "--no-tokens")
    text = box.path("audit/audit.md").read_text(encoding="utf-8") if run.code == 0 else ""
    raw, escaped = "<script" in text.lower(), "&lt;script&gt;" in text
    return (run.code == 0 and not raw and escaped,
            f"exit {run.code}; audit.md: raw <script {'PRESENT' if raw else 'absent'}, "
            f"{'escaped as &lt;script&gt;' if escaped else 'no escaped copy (not shown?)'}")


# --------------------------------------------------------------------------------------- 12-13. crashes


def bad_list(box: Box) -> Path:
    good = [json.dumps({"instruction": f"Say hi {k}", "input": "", "output": f"hi {k}"}) for k in range(2)]
    deep = '{"instruction": "x", "input": "", "output": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = box.path("bad.json")
    path.write_text("[\n  " + ",\n  ".join([good[0], SURROGATE, deep, good[1]]) + "\n]\n", encoding="utf-8")
    return path


def s12a(box: Box) -> tuple[bool, str]:
    bad_list(box)
    run = box.build(box.mix({"sources": [{"name": "s", "path": "bad.json", "lenient": True}]}))
    rejected = pl.read_parquet(box.root / "out" / "t" / "rejected.parquet") if run.code == 0 else pl.DataFrame()
    details = rejected.filter(pl.col("reason") == "malformed_json")["detail"].to_list() if run.code == 0 else []
    return run.code == 0 and len(details) == 2 and no_traceback(run), \
        f"exit {run.code}; malformed_json: {details}"


def s12b(box: Box) -> tuple[bool, str]:
    bad_list(box)
    run = box.build(box.mix({"sources": [{"name": "s", "path": "bad.json"}]}))
    return (run.code == 1 and "line 3, column" in run.output and "no low surrogate" in run.output
            and no_traceback(run), run.key("line 3"))


def s12c(box: Box) -> tuple[bool, str]:
    bad_list(box)
    run = box.cli("audit", "bad.json", "--out", "audit", "--no-tokens")
    return run.code == 0 and no_traceback(run), run.key("items")


def one_line(run: Run, code: int, needle: str) -> tuple[bool, str]:
    return (run.code == code and len(run.lines()) == 1 and needle in run.output,
            f"{run.key(needle)} ({len(run.lines())} line(s))")


def s13a(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    box.path("out").write_text("a file")
    return one_line(box.build(box.mix({})), 2, "is a file, not a folder")


def tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        raise Skip("mounting a tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode:
        raise Skip("this machine does not allow mounting a tmpfs")


def s13b(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    tmpfs(box.root / "ro", "1m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(box.root / "ro")], check=True)
        return one_line(box.build(box.mix({"output": {"dir": "ro"}})), 2, "Read-only file system")
    finally:
        subprocess.run(["umount", "-l", str(box.root / "ro")])


def s13c(box: Box) -> tuple[bool, str]:
    import random

    rng = random.Random(0)
    noise = [{"instruction": "x" * 2, "input": "", "output": "".join(rng.choices("abcdefghij0123456789", k=3000))}
             for _ in range(600)]
    source = box.jsonl("a.jsonl", ROWS)
    small = box.root / "small"
    tmpfs(small, "1m")
    try:
        mix = box.mix({"output": {"dir": "small", "compression": "uncompressed"}})
        first = box.build(mix)
        before = tree(small / "t")
        box.jsonl("a.jsonl", ROWS + noise)  # fits the free-space check on inputs; its outputs do not fit
        source.write_bytes(source.read_bytes()[:900_000].rsplit(b"\n", 1)[0] + b"\n")
        run = box.build(mix)
        ok, seen = one_line(run, 1, "No space left on device")
        left = sorted(p.name for p in small.iterdir() if ".tmp-" in p.name or ".old-" in p.name)
        return (first.code == 0 and ok and tree(small / "t") == before and not left,
                f"{seen}, naming a path: {'yes' if '$T' in run.output else 'no'}; previous build "
                f"{intact(before, small / 't')}; temporary folders left: {left or 'none'}")
    finally:
        subprocess.run(["umount", "-l", str(small)])


def s13d(box: Box) -> tuple[bool, str]:
    box.jsonl("a.jsonl", ROWS)
    mix = box.mix({})
    mix.write_bytes(mix.read_bytes() + "# café\n".encode("latin-1"))
    return one_line(box.build(mix), 2, "not UTF-8")


# ------------------------------------------------------------------------------ 14. stopping a flow build


def flow_with_server(box: Box, rows: int) -> tuple[subprocess.Popen[bytes], Path, float, list[psutil.Process]]:
    """A flow build started in its own session (as a shell starts a foreground job), once its temporary
    Prefect server (uvicorn) runs and it holds the output: (process, log, start time, its descendants)."""
    box.jsonl("a.jsonl", [{"instruction": f"Repeat {i}", "input": "", "output": f"Step {i}: count {i} apples "
                           f"and {i + 1} pears."} for i in range(rows)])
    mix = box.mix({})
    started = time.monotonic()
    proc, log = box.spawn("build", "--mix", str(mix), new_session=True)

    def ready() -> bool:
        children = psutil.Process(proc.pid).children(recursive=True)
        return any("uvicorn" in " ".join(c.cmdline()) for c in children) and lock_holder(box) == str(proc.pid)

    if not wait_for(ready, proc, 240, 0.1):
        raise AssertionError(f"no temporary server / flow appeared: {box.finish(proc, log, started, 1).key('')}")
    time.sleep(0.5)  # into the shards
    return proc, log, started, psutil.Process(proc.pid).children(recursive=True)


def s14a(box: Box) -> tuple[bool, str]:
    proc, log, started, children = flow_with_server(box, 60_000)
    printed = log.stat().st_size
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground process group
    signalled = time.monotonic()
    run = box.finish(proc, log, started, 120)
    exit_s = time.monotonic() - signalled
    after = [line for line in log.read_bytes()[printed:].decode(errors="replace").splitlines() if line.strip()]
    gone_s, left = wait_gone(children, 10)
    tmp_left = [p.name for p in (box.root / "out").iterdir() if ".tmp-" in p.name]
    return (run.code == 130 and exit_s < 5 and len(after) == 1 and "interrupted (SIGINT)" in after[0]
            and no_traceback(run) and not left and not tmp_left and not (box.root / "out" / "t").exists(),
            f"{run.key('interrupted')} {exit_s:.2f} s after SIGINT; {len(after)} line(s) printed after the signal"
            f"{f' (then: {after[1][:90]}...)' if len(after) > 1 else ''}; "
            f"its {len(children)} child processes (server, watchdog) gone {gone_s:.2f} s after it exited"
            f"{f', ALIVE: {[p.pid for p in left]}' if left else ''}; tmp left: {tmp_left or 'none'}")


def s14b(box: Box) -> tuple[bool, str]:
    proc, log, started, children = flow_with_server(box, 20_000)
    server = [c for c in children if "uvicorn" in " ".join(c.cmdline())]
    proc.kill()
    box.finish(proc, log, started, 30)
    gone_s, left = wait_gone(server, 15)
    _, rest = wait_gone(children, 10)
    for p in rest:
        with_process(p.kill)
    return (not left and gone_s <= 5 and not rest,
            f"kill -9 of the CLI: temporary server (PID {', '.join(str(p.pid) for p in server)}) "
            f"{'gone after' if not left else 'STILL ALIVE after'} {gone_s:.2f} s; other children "
            f"{'gone' if not rest else f'ALIVE: {[p.pid for p in rest]}'}")


# --------------------------------------------------------------------------------------------- 15. scale


def s15(box: Box) -> tuple[bool, str]:
    for k, record in enumerate(alpaca(2000)):
        box.json(f"parts/{k:06d}.json", [record])
    run = box.cli("validate", "--mix", str(box.mix({"sources": [{"name": "s", "path": "parts/*.json"}]})),
                  timeout=300)
    return (run.code == 0 and run.seconds < 30 and "ok:" in run.output,
            f"{run.key('ok:')} in {run.seconds:.1f} s (before the fix: 55 s; 10,000 files: > 11 min)")


@dataclass
class Scenario:
    id: str
    scenario: str
    expected: str
    run: Callable[[Box], tuple[bool, str]]


SCENARIOS = [
    Scenario("1a", "`name: data`, `output.dir: .`; data/ is the input folder, with NOTES.txt",
             "exit 2 'would replace source', data/ intact", s1a),
    Scenario("1b", "`output.dir: ..` with the project folder's own name", "exit 2, project intact", s1b),
    Scenario("1c", "`name: train.json`, an input file", "exit 2, the file intact", s1c),
    Scenario("1d", "the target is a folder that is not a build", "exit 2 'not a previous build', intact", s1d),
    Scenario("2a", "a build that keeps 0 train records, after a good one",
             "exit 1 'no train record left', previous build byte-identical", s2a),
    Scenario("2b", "`dedup.against` names the build's own output", "exit 2, previous build intact", s2b),
    Scenario("3", "flow: truncate train.parquet, delete tokenized/; then a same-size bit flip",
             "rebuilt (not 'unchanged'), original hashes; the bit flip caught with --verify", s3),
    Scenario("4", "SIGTERM while a direct build writes; planted .t.tmp-/.t.old-99999",
             "exit 130, one 'interrupted' line, no tmp left; leftovers cleared; target never missing", s4),
    Scenario("5", f"flow: a second build of the same name while a {RECORDS_5 // 1000}k-record one runs",
             "second: exit 2 'is being built by PID <first>'; first completes; no FileNotFoundError", s5),
    Scenario("6", "decontamination: two 13-token windows with equal old 32-bit hashes",
             "the clean record kept, the real copy removed", s6),
    Scenario("7", "2,000 real Alpaca rows written by csv.writer (empty input cells)", "no wrong_type:input", s7),
    Scenario("8a", "duplicate YAML key `pii.action`", "exit 2 naming line and key", s8a),
    Scenario("8b", "`mixture.size: true`", "exit 2", s8b),
    Scenario("8c", "`split.eval: 50000` on 2,000 records", "a warning, then exit 1 'no train record left'", s8c),
    Scenario("8d", "the same under `mixture.strict: true`", "exit 2 'split guard failed'", s8d),
    Scenario("9a", "ShareGPT: e-mail, phone, Chinese ID, Luhn card in system and history; redact_rejected",
             "none in train.parquet, tokenized/, rejected.parquet", s9a),
    Scenario("9b", "the same with `pii.action: quarantine`", "those records quarantined, train clean", s9b),
    Scenario("10a", "folder source with passwd.jsonl -> /etc/passwd and a FIFO",
             "both skipped with a warning; nothing of /etc/passwd in rejected.parquet", s10a),
    Scenario("10b", "a FIFO named as a source", "exit 2 at once (no hang)", s10b),
    Scenario("11", "`pipeline audit` of `<script>alert(1)</script>` instructions", "audit.md has no raw <script", s11),
    Scenario("12a", "JSON list with a lone \\ud800 and a 100,000-deep element, lenient",
             "both quarantined as malformed_json, exit 0", s12a),
    Scenario("12b", "the same, strict", "exit 1 naming line and column", s12b),
    Scenario("12c", "`pipeline audit` of the same file", "exit 0", s12c),
    Scenario("13a", "`output.dir` is a file", "exit 2, one line", s13a),
    Scenario("13b", "output on a read-only tmpfs", "exit 2, one line", s13b),
    Scenario("13c", "disk full (1 MB tmpfs) after a good build",
             "exit 1, one line 'No space left on device', previous build intact", s13c),
    Scenario("13d", "mix file that is not UTF-8", "exit 2, one line", s13d),
    Scenario("14a", "Ctrl-C (SIGINT to the process group) of a flow build, temporary Prefect server",
             "exit 130 within seconds, one line, the server gone", s14a),
    Scenario("14b", "kill -9 of a flow build's CLI", "the temporary server gone within ~5 s", s14b),
    Scenario("15", "`pipeline validate` on 2,000 one-record files", "well under a minute (< 30 s)", s15),
]


def selected(only: str | None) -> list[Scenario]:
    if not only:
        return SCENARIOS
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    return [s for s in SCENARIOS if s.id in wanted or s.id.rstrip("abcd") in wanted]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated items (5) or scenario ids (13c)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    scenarios = selected(args.only)
    if not scenarios:
        parser.error(f"--only {args.only}: no such item or scenario")
    workdir = Path(tempfile.mkdtemp(prefix="adversarial-"))
    rows, total = [], time.monotonic()
    for scenario in scenarios:
        started = time.monotonic()
        try:
            ok, observed = scenario.run(Box(workdir / scenario.id))
            verdict = "PASS" if ok else "FAIL"
        except Skip as why:
            verdict, observed = "SKIP", str(why)
        except Exception as err:  # noqa: BLE001 - a broken scenario is a FAIL row, not the end of the pass
            verdict, observed = "FAIL", f"{type(err).__name__}: {err}"[:300]
        seconds = time.monotonic() - started
        rows.append((scenario, observed, verdict, seconds))
        print(f"[{scenario.id}] {verdict} in {seconds:.1f} s: {observed}", file=sys.stderr, flush=True)
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load "
          f"average {os.getloadavg()[0]:.1f}; command: {' '.join([python, *sys.argv])}\n")
    print("| item | scenario | expected now | observed | result | time |")
    print("|---|---|---|---|---|---:|")
    for scenario, observed, verdict, seconds in rows:
        print(f"| {scenario.id} | {cell(scenario.scenario)} | {cell(scenario.expected)} | {cell(observed)} | "
              f"{'**FAIL**' if verdict == 'FAIL' else verdict} | {seconds:.1f} s |")
    failed = [scenario.id for scenario, _, verdict, _ in rows if verdict == "FAIL"]
    failures = f"; FAILED: {', '.join(failed)}" if failed else ""
    print(f"\n{len(rows) - len(failed)} of {len(rows)} scenarios did not fail{failures}; "
          f"{time.monotonic() - total:.0f} s in all")
    if args.keep:
        print(f"kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

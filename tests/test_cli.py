"""The command line as the field's tools have it (#20 item 7): --version, shell completion (the lazily loaded
training commands too), --quiet, a line per build step with its records/s, spec problems as one error before any
data is read (exit 2), Ctrl-C on a real `pipeline serve` and `pipeline train` (exit 130 within seconds, nothing
half-written; `build`'s are in test_output_safety.py), and `audit --columns`."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import pipeline
from pipeline.io.tokenizer import ENV
from tests.conftest import LLAMA2_TOKENIZER, ROOT, write_jsonl

PIPELINE = [sys.executable, "-c", "from pipeline.cli import app; app()"]
SCRIPT = Path(sys.executable).with_name("pipeline")  # the console script: completion is keyed by its name
STEPS = ["read + filter", "dedup", "decontaminate", "split", "mixture", "tokenize", "report", "write"]
STEP_LINE = re.compile(r"^(?P<step>[a-z +]+?) +(?P<records>[\d,]+) records +(?P<seconds>[\d.]+) s"
                       r"(?: +(?P<rate>[\d,]+) records/s)?(?: +-> (?P<kept>[\d,]+))?$", re.MULTILINE)
ROWS = [{"instruction": f"Question number {i} about topic {i * 7}", "input": "", "output": f"Answer {i}"}
        for i in range(20)]


def shown_steps(output: str) -> list[tuple[str, int, int]]:
    """(step, records, kept) of each finished-step line a build printed, in order; each line has its rate."""
    found = list(STEP_LINE.finditer(output))
    assert all(m["rate"] for m in found if float(m["seconds"]) > 0), output
    return [(m["step"], int(m["records"].replace(",", "")), int((m["kept"] or m["records"]).replace(",", "")))
            for m in found]


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PIPELINE, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_version_is_the_package_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.output == f"pipeline {pipeline.__version__}\n"
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pipeline.__version__ == declared == importlib.metadata.version("instruct-pipeline")


@pytest.mark.parametrize("words, expected", [
    ("pipeline ", ["build", "serve", "validate", "estimate", "audit", "export", "push", "train", "generate", "eval"]),
    ("pipeline tr", ["train"]),
    ("pipeline train --base", ["--base-model"]),  # a lazily loaded command's own options
    ("pipeline build --ru", ["--runner"]),
    ("pipeline --q", ["--quiet"]),
])
def test_shell_completion_completes_every_command(words, expected):
    if not SCRIPT.exists():
        pytest.skip(f"the console script is not installed at {SCRIPT}")
    env = {**os.environ, "_PIPELINE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == expected, (done.stdout, done.stderr)
    # typer detects the shell from the parent processes unless told (a detached run has none it knows)
    shown = subprocess.run([str(SCRIPT), "--show-completion", "bash"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert "_PIPELINE_COMPLETE=complete_bash" in shown.stdout


def _split_mix(tmp_path: Path) -> Path:
    """20 records, 12 of them to eval: the split logs a warning."""
    write_jsonl(tmp_path / "rows.jsonl", ROWS)
    mix = tmp_path / "mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl"}],
                                   "split": {"eval": 0.6}, "tokenize": {"enabled": False}, "output": {"dir": "out"}}))
    return mix


def test_quiet_prints_the_result_line_and_nothing_else(tmp_path, cli):
    mix = _split_mix(tmp_path)
    loud = _run("build", "--mix", str(mix), "--runner", "direct")
    assert loud.returncode == 0, loud.stderr
    assert "split.eval: 0.6 leaves 8 records in train" in loud.stderr and "records/s" in loud.stderr
    quiet = _run("--quiet", "build", "--mix", str(mix), "--runner", "direct")
    assert quiet.returncode == 0 and quiet.stdout == ""
    out = tmp_path / "out" / "t"
    assert quiet.stderr == f"t: 20 records in, 8 train, 12 eval, 0 rejected, 0 duplicates; wrote {out}\n"
    both = cli("-v", "-q", "estimate")
    assert both.exit_code == 2 and "--verbose and --quiet: choose one" in both.output


def test_a_direct_build_shows_each_step_with_its_records_per_second(cli, llama_tokenizer, tmp_path):
    shutil.copytree(ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("*.py", "*.md"))
    result = cli("build", "--mix", str(tmp_path / "data" / "mix.yaml"), "--runner", "direct")
    assert result.exit_code == 0, result.output
    shown = shown_steps(result.output)
    assert [step for step, _, _ in shown] == STEPS
    assert shown[0] == ("read + filter", 310, 298) and shown[1] == ("dedup", 298, 289)  # data/README.md's counts
    assert shown[-2:] == [("report", 310, 289), ("write", 289, 289)]


SPEC_PROBLEMS = {  # tokenize section (None: the tokenizer folder is the test's) -> what the one error line says
    "no chat template": ({"template": "chat_template"}, "has no chat template"),
    "failing chat template": ({"template": "chat_template"}, "fails on a user and an assistant turn"),
    "unknown tokenizer folder": ({}, "(no such folder)"),
    "not a tokenizer": ({}, "cannot load the tokenizer"),
}


def _tokenizer_folder(case: str, tmp_path: Path) -> Path:
    folder = tmp_path / "tokenizer"
    if case in ("no chat template", "failing chat template"):
        shutil.copytree(LLAMA2_TOKENIZER, folder)
    if case == "failing chat template":
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["chat_template"] = "{{ raise_exception('this template takes system turns only') }}"
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if case == "not a tokenizer":
        folder.mkdir()
    return folder


@pytest.mark.parametrize("runner", ["direct", "local"])
@pytest.mark.parametrize("case", list(SPEC_PROBLEMS))
def test_a_tokenizer_problem_is_one_line_before_any_data_is_read(case, runner, tmp_path, monkeypatch, cli,
                                                                 llama_tokenizer):
    """The source's first line is malformed JSON (strict): had anything read it, the error would be exit 1 naming
    line 1. `--runner local` stops before Prefect starts (the ``cli`` fixture has no server)."""
    tokenize, message = SPEC_PROBLEMS[case]
    monkeypatch.setenv(ENV, str(_tokenizer_folder(case, tmp_path)))
    (tmp_path / "rows.jsonl").write_text('{"instruction": "a", "output": \n')
    mix = tmp_path / "mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl"}],
                                   "tokenize": tokenize, "output": {"dir": "out"}}))
    result = cli("build", "--mix", str(mix), "--runner", runner)
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: ") and not (tmp_path / "out" / "t").exists()
    if runner == "direct":
        checked = cli("validate", "--mix", str(mix))
        assert checked.exit_code == 2 and message in checked.output, checked.output


@pytest.mark.parametrize("template", ["alpacca", None])
def test_an_unknown_or_missing_template_stops_before_reading(template, tmp_path, cli):
    (tmp_path / "rows.jsonl").write_text('{"instruction": "a", "output": \n')
    mix = tmp_path / "mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl"}],
                                   "tokenize": {"template": template}}))
    result = cli("build", "--mix", str(mix), "--runner", "direct")
    assert result.exit_code == 2 and "tokenize.template: Input should be 'alpaca', 'llama2-chat'" in result.output
    assert "line 1" not in result.output


@pytest.mark.parametrize("command, options, message", [
    ("build", ["--runner", "dask", "--worker-memory", "lots"],
     "--worker-memory 'lots' is not a memory size; give one like 4GB"),
    ("build", ["--runner", "dask", "--worker-memory", "4"],
     "--worker-memory '4' is 4 bytes, less than a worker process needs (512 MiB at least)"),
    ("build", ["--runner", "local", "--worker-memory", "4GB"],
     "--worker-memory sets the limit of the local Dask workers (--runner dask without --dask-address)"),
    ("serve", ["--runner", "dask", "--dask-address", "tcp://127.0.0.1:1", "--worker-memory", "4GB",
               "--cron", "0 3 * * *"],
     "a cluster at --dask-address has its own"),
])
def test_a_bad_worker_memory_is_one_line_before_any_work(command, options, message, tmp_path, cli):
    """The source's first line is malformed JSON: had anything read it, the error would be exit 1 naming line 1."""
    (tmp_path / "rows.jsonl").write_text('{"instruction": "a", "output": \n')
    mix = tmp_path / "mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "t", "sources": [{"name": "s", "path": "rows.jsonl"}],
                                   "tokenize": {"enabled": False}, "output": {"dir": "out"}}))
    result = cli(command, "--mix", str(mix), *options)
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


def test_serve_without_a_server_is_one_line(tmp_path):
    mix = _split_mix(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run([*PIPELINE, "serve", "--mix", str(mix), "--cron", "0 3 * * *"], capture_output=True,
                          text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "serve needs a Prefect server" in done.stderr


def _signal_and_time(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGINT) -> float:
    """Send ``sig`` to the process group, as a terminal's Ctrl-C does; seconds until the process ended."""
    started = time.monotonic()
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    return time.monotonic() - started


def test_ctrl_c_stops_serve_and_its_running_build_at_once(tmp_path, prefect_api):
    """It took 22 s with a build running (Prefect waits for the build's threads to finish their stage) and exited
    0; the killed run must not stay Running on the server, and the schedule is paused."""
    import psutil
    from prefect import get_client
    from prefect.deployments import run_deployment

    rows = [{"instruction": f"Repeat {i}", "input": "", "output": f"Step {i}: count {i} apples and {i + 1} pears."}
            for i in range(300_000)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    mix = tmp_path / "mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "served", "sources": [{"name": "s", "path": "a.jsonl"}],
                                   "tokenize": {"enabled": False}, "output": {"dir": "out"}}))
    with open(tmp_path / "serve.log", "w") as log:
        serve = subprocess.Popen([*PIPELINE, "serve", "--mix", str(mix), "--cron", "0 3 * * *"], stdout=log,
                                 stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "being served" not in (tmp_path / "serve.log").read_text():
            assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        run = run_deployment("instruct-pipeline-build/served", timeout=0)
        with get_client(sync_client=True) as client:
            while not client.read_flow_run(run.id).state.is_running():
                assert time.monotonic() < deadline, "the served run did not start"
                time.sleep(0.2)
        time.sleep(2)  # into the build: its processes are reading
        children = psutil.Process(serve.pid).children(recursive=True)
        seconds = _signal_and_time(serve)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    print(f"serve stopped {seconds:.2f} s after SIGINT")
    output = (tmp_path / "serve.log").read_text()
    assert serve.returncode == 130 and seconds < 5, output
    assert "interrupted (SIGINT): serving stopped" in output and "Traceback" not in output, output
    assert children and psutil.wait_procs(children, timeout=5)[1] == []
    left = [p for p in (tmp_path / "out").rglob("*") if ".tmp-" in p.name or p.is_file() and p.suffix != ".lock"]
    assert left == []  # no version, no temporary folder
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run.id).state.is_crashed()
        assert client.read_deployment_by_name("instruct-pipeline-build/served").paused


def test_ctrl_c_stops_training_at_once_without_a_half_written_checkpoint(tiny_llama, trainer_build, tmp_path):
    """SIGINT as soon as the step-2 checkpoint's folder appears (while it is written, or just after): exit 130
    within seconds (a training step here takes seconds), no adapter, and only complete checkpoints left."""
    out = tmp_path / "run"
    with open(tmp_path / "train.log", "w") as log:
        proc = subprocess.Popen([*PIPELINE, "train", "--build", str(trainer_build), "--base-model", str(tiny_llama),
                                 "--output", str(out), "--method", "lora", "--max-steps", "40", "--eval-steps", "20",
                                 "--save-steps", "2", "--micro-batch-size", "4"], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / "checkpoint-2").exists():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "train.log").read_text()[-3000:]
        time.sleep(0.001)
    seconds = _signal_and_time(proc)
    print(f"train stopped {seconds:.2f} s after SIGINT")
    output = (tmp_path / "train.log").read_text()
    assert proc.returncode == 130 and seconds < 5, output[-3000:]
    assert "interrupted (SIGINT): training stopped" in output and "Traceback" not in output
    assert sorted(p.name for p in out.iterdir()) in (["checkpoints", "forgetting_state.json"], ["checkpoints"])
    assert all((c / "trainer_state.json").is_file() for c in (out / "checkpoints").glob("checkpoint-*"))


def test_audit_columns_name_the_key_of_a_field(tmp_path, monkeypatch, cli):
    write_jsonl(tmp_path / "data.jsonl", [{"instruction": r["instruction"], "reply": r["output"]} for r in ROWS])
    monkeypatch.chdir(tmp_path)
    for columns, records in (([], 0), (["--columns", "output=reply"], 20)):
        result = cli("--quiet", "audit", "data.jsonl", "--no-tokens", "--format", "json", "--out", "a", *columns)
        assert result.exit_code == 0 and result.output.count("\n") == 1 and result.output.startswith("wrote ")
        assert json.loads((tmp_path / "a" / "audit.json").read_text())["totals"]["records"] == records
    bad = cli("audit", "data.jsonl", "--no-tokens", "--columns", "output")
    assert bad.exit_code == 2 and "expected FIELD=KEY" in bad.output and bad.output.count("\n") == 1

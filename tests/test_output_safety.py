"""The output folder is never something the build must not touch (#16, items 1-5 and 13): unsafe targets are
refused before any work, an empty build leaves the previous one, a damaged output is rebuilt, the switch is one
atomic step whose leftovers the next run clears, and one build at a time holds a name."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from pipeline import build, writer
from pipeline.cli import app
from pipeline.config import load_mix
from pipeline.io import output_folder
from tests.conftest import ROOT, write_jsonl

ROWS = [{"instruction": f"Name fact number {i}.", "input": "", "output": f"Fact {i}: {i * 7} is a number."}
        for i in range(40)]


def _direct(mix: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["build", "--mix", str(mix), "--runner", "direct", *extra],
                                catch_exceptions=False)
    return result.exit_code, result.output


def _mix(folder: Path, spec: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mix.yaml"
    path.write_text(yaml.safe_dump({"tokenize": {"enabled": False}, **spec}, sort_keys=False), encoding="utf-8")
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_input_folder_named_as_the_output_is_refused_and_kept(tmp_path: Path) -> None:
    """`name: data` with `output.dir: .` deleted the input folder data/ (with a NOTES.txt) before this check."""
    write_jsonl(tmp_path / "data" / "a.jsonl", ROWS)
    (tmp_path / "data" / "NOTES.txt").write_text("mine")
    mix = _mix(tmp_path, {"name": "data", "sources": [{"name": "s", "path": "data/a.jsonl"}], "output": {"dir": "."}})
    before = _tree(tmp_path / "data")
    code, output = _direct(mix)
    assert code == 2 and "would replace source s" in output, output
    assert _tree(tmp_path / "data") == before


def test_the_project_folder_itself_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_jsonl(project / "a.jsonl", ROWS)
    mix = _mix(project, {"name": "project", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": ".."}})
    code, output = _direct(mix)
    assert code == 2 and "would replace" in output and (project / "a.jsonl").is_file()


def test_an_input_file_named_as_the_output_is_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.json", ROWS)
    mix = _mix(tmp_path, {"name": "train.json", "sources": [{"name": "s", "path": "train.json"}],
                          "output": {"dir": "."}})
    code, output = _direct(mix)
    assert code == 2 and "would replace source s" in output and (tmp_path / "train.json").is_file()


def test_a_folder_that_is_not_a_build_is_refused_an_empty_one_is_used(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    (tmp_path / "out" / "t").mkdir(parents=True)
    assert _direct(mix)[0] == 0  # empty: nothing to lose
    (tmp_path / "out" / "t" / "manifest.json").unlink()  # now a folder with files but no build manifest
    code, output = _direct(mix)
    assert code == 2 and "not a previous build" in output
    assert (tmp_path / "out" / "t" / "train.parquet").is_file()


def test_a_build_that_keeps_nothing_leaves_the_previous_build(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    assert _direct(mix)[0] == 0
    before = _tree(tmp_path / "out" / "t")
    write_jsonl(tmp_path / "a.jsonl", [{**row, "output": " "} for row in ROWS])  # every output empty
    code, output = _direct(mix)
    assert code == 1 and "no train record left: 40 records in, 40 rejected (empty_output 40)" in output, output
    assert "Traceback" not in output and _tree(tmp_path / "out" / "t") == before


def test_dedup_against_its_own_output_is_refused(tmp_path: Path) -> None:
    """With `dedup.against` naming the build's own output, every record was a duplicate of itself and the good
    build was replaced by an empty one, with exit 0."""
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    spec = {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}}
    mix = _mix(tmp_path, spec)
    assert _direct(mix)[0] == 0
    before = _tree(tmp_path / "out" / "t")
    mix = _mix(tmp_path, {**spec, "dedup": {"against": ["out/t"]}})
    code, output = _direct(mix)
    assert code == 2 and "would replace dedup.against out/t" in output, output
    assert _tree(tmp_path / "out" / "t") == before


def test_damaged_output_is_found_by_size_and_with_verify_by_hash(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    out = writer.write(build.run(load_mix(mix)))
    assert output_folder.damaged(out) is None and output_folder.damaged(out, verify=True) is None
    data = (out / "train.parquet").read_bytes()
    (out / "train.parquet").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    assert output_folder.damaged(out) is None
    assert output_folder.damaged(out, verify=True) == "train.parquet does not match its sha256 in the manifest"
    (out / "train.parquet").write_bytes(data[:100])
    assert "train.parquet has 100 bytes" in output_folder.damaged(out)  # type: ignore[operator]


def test_replace_swaps_in_one_step_and_deletes_the_old(tmp_path: Path) -> None:
    target, tmp = tmp_path / "t", tmp_path / ".t.tmp-1"
    target.mkdir(), tmp.mkdir()
    (target / "old.txt").write_text("old"), (tmp / "new.txt").write_text("new")
    output_folder.replace(tmp, target)
    assert [p.name for p in target.iterdir()] == ["new.txt"] and not tmp.exists()
    assert output_folder._exchange(tmp_path, tmp_path) or sys.platform != "linux"  # the atomic path is the one used


def test_hold_restores_a_target_lost_between_two_renames_and_clears_leftovers(tmp_path: Path) -> None:
    """The fallback's two renames, killed between them: no target, the previous build hidden as .t.old-<pid> and
    the complete new one as .t.tmp-<pid>; killed runs also leave half-written .t.tmp-<pid> folders."""
    for name, manifest in ((".t.old-11", True), (".t.tmp-12", True), (".t.tmp-13", False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.parquet").write_text(name)
        if manifest:
            (tmp_path / name / "manifest.json").write_text('{"spec_hash": "x", "outputs": {}}')
    with output_folder.hold(tmp_path / "t"):
        pass
    assert (tmp_path / "t" / "train.parquet").read_text() == ".t.tmp-12"  # the newest complete build
    assert sorted(p.name for p in tmp_path.iterdir()) == [".t.lock", "t"]


HOLDER = """
import sys, time
from pathlib import Path
from pipeline.io import output_folder
with output_folder.hold(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


@contextlib.contextmanager
def _held_elsewhere(folder: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_build_of_a_held_name_stops_at_once_naming_the_holder(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    with _held_elsewhere(tmp_path / "out" / "t") as holder:
        code, output = _direct(mix)
        assert code == 2 and f"is being built by PID {holder.pid}" in output, output
    assert _direct(mix)[0] == 0  # the kernel released the lock with its holder (killed)


def test_sigterm_is_handled_like_ctrl_c_and_the_next_run_clears_leftovers(tmp_path: Path) -> None:
    rows = [{"instruction": f"Repeat {i}", "input": "",
             "output": f"Step {i}: add {i} apples to {i + 1} pears and count {2 * i + 1} fruits in the basket."}
            for i in range(100_000)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "build", "--mix", str(mix), "--workers", "1",
                             "--runner", "direct"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tmp_out = tmp_path / "out" / f".t.tmp-{proc.pid}"
    deadline = time.monotonic() + 120
    while not (tmp_out / "train.parquet").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, f"the build ended before it could be interrupted: {proc.communicate()[0]}"
    os.kill(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in output and "Traceback" not in output, output
    assert not tmp_out.exists() and not (tmp_path / "out" / "t").exists()
    (tmp_path / "out" / ".t.tmp-999999").mkdir()  # as a kill -9 leaves it
    write_jsonl(tmp_path / "a.jsonl", rows[:20])
    assert _direct(mix)[0] == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".cache", ".t.lock", "t"]


def test_ctrl_c_stops_a_direct_build_at_once_during_its_global_stages(tmp_path: Path) -> None:
    """SIGINT once reading is done (its line printed) and dedup runs: exit 130 within a second or so, nothing
    written, no temporary folder."""
    rows = [{"instruction": f"Repeat {i}", "input": "", "output": f"Step {i}: count {i} apples and {i + 1} pears."}
            for i in range(60_000)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    proc = subprocess.Popen([sys.executable, "-c", "from pipeline.cli import app; app()", "build", "--mix", str(mix),
                             "--workers", "1", "--runner", "direct"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    while lines[-1] and not lines[-1].startswith("read + filter"):
        lines.append(proc.stdout.readline())
    assert proc.poll() is None, "".join(lines)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal's Ctrl-C
    output = "".join(lines) + proc.communicate(timeout=60)[0]
    seconds = time.monotonic() - started
    print(f"exit {seconds:.2f} s after SIGINT")
    assert proc.returncode == 130 and seconds < 5, output
    assert "interrupted (SIGINT): build stopped" in output and "Traceback" not in output, output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) in ([".cache", ".t.lock"], [".t.lock"])


def test_output_dir_that_is_a_file_is_one_line_before_any_work(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    (tmp_path / "out").write_text("a file")
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    code, output = _direct(mix)
    assert code == 2 and output.count("\n") == 1 and "is a file, not a folder" in output, output


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_read_only_output_is_refused_before_any_work(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    with _tmpfs(tmp_path / "ro", "1m") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "ro"}})
        code, output = _direct(mix)
    assert code == 2 and "cannot write there (Read-only file system)" in output, output


def test_a_full_disk_is_one_line_and_the_previous_build_survives(tmp_path: Path) -> None:
    """The inputs fit the free-space check, the outputs (a big rejected.parquet of incompressible rows) do not."""
    import random

    rng = random.Random(0)
    noise = [{"instruction": "x" * 2, "input": "", "output": "".join(rng.choices("abcdefghij0123456789", k=3000))}
             for _ in range(600)]
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    with _tmpfs(tmp_path / "small", "1m") as small:
        mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}],
                              "output": {"dir": "small", "compression": "uncompressed"}})
        code, output = _direct(mix)
        assert code == 0, output
        before = _tree(small / "t")
        write_jsonl(tmp_path / "a.jsonl", ROWS + noise)  # 1.8 MB: more than the tmpfs holds
        (tmp_path / "a.jsonl").write_bytes((tmp_path / "a.jsonl").read_bytes()[:900_000].rsplit(b"\n", 1)[0] + b"\n")
        code, output = _direct(mix)
        assert code == 1 and "No space left on device" in output and "Traceback" not in output, output
        assert _tree(small / "t") == before
        assert sorted(p.name for p in small.iterdir()) == [".cache", ".t.lock", "t"]  # no temporary folder left


def _descendants(pid: int) -> list:  # type: ignore[type-arg]
    import psutil

    return psutil.Process(pid).children(recursive=True)


def _flow_cli(mix: Path, state: Path) -> subprocess.Popen[str]:
    """`pipeline build` on the default flow runner, with no PREFECT_API_URL: Prefect starts a temporary server.
    Its output goes to a file: a pipe would be held open by any process that outlives the build."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "cli.log", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "build", "--mix", str(mix)],
                                env={**env, "PYTHONPATH": str(ROOT), "INSTRUCT_PIPELINE_STATE": str(state)},
                                stdout=log, stderr=subprocess.STDOUT, text=True)


def _wait_for_server(proc: subprocess.Popen[str]) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        children = _descendants(proc.pid)
        if any("uvicorn" in " ".join(c.cmdline()) for c in children):
            return children
        time.sleep(0.2)
    proc.wait()
    raise AssertionError("no temporary Prefect server appeared: " + Path(proc.args[-1]).parent.joinpath(
        "state", "cli.log").read_text())


def test_ctrl_c_on_the_flow_runner_stops_at_once_with_its_processes(tmp_path: Path) -> None:
    """It took ~150 s, exited 1 with a 221-line log and a traceback."""
    import psutil

    rows = [{"instruction": f"Repeat {i}", "input": "", "output": f"Step {i}: count {i} apples and {i + 1} pears."}
            for i in range(60_000)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    proc = _flow_cli(mix, tmp_path / "state")
    children = _wait_for_server(proc)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    proc.wait(timeout=30)
    print(f"exit {time.monotonic() - started:.2f} s after SIGINT")
    output = (tmp_path / "state" / "cli.log").read_text()
    assert proc.returncode == 130, output
    assert "interrupted (SIGINT): build stopped" in output and "Traceback" not in output, output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], alive
    assert not (tmp_path / "out" / "t").exists()


def test_kill_9_of_a_flow_build_takes_the_temporary_server_with_it(tmp_path: Path) -> None:
    import psutil

    write_jsonl(tmp_path / "a.jsonl", ROWS * 500)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}], "output": {"dir": "out"}})
    proc = _flow_cli(mix, tmp_path / "state")
    server = [c for c in _wait_for_server(proc) if "uvicorn" in " ".join(c.cmdline())]
    time.sleep(1)  # the watchdog looks for new processes every 0.2 s: one born just before the kill is missed
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(server, timeout=15)  # the watchdog notices within 0.2 s; uvicorn then shuts down
    assert alive == [], "the temporary Prefect server outlived its build"


def test_a_mix_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    mix = _mix(tmp_path, {"name": "t", "sources": [{"name": "s", "path": "a.jsonl"}]})
    mix.write_bytes(mix.read_bytes() + "# café\n".encode("latin-1"))
    code, output = _direct(mix)
    assert code == 2 and output.count("\n") == 1 and "not UTF-8 text (byte 0xe9 at offset" in output, output


def test_every_compression_writes(tmp_path: Path) -> None:
    """`compression: uncompressed` and `snappy` crashed the writer (it passed zstd's level to every codec)."""
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    for codec in ("zstd", "snappy", "lz4", "uncompressed"):
        mix = _mix(tmp_path, {"name": codec, "sources": [{"name": "s", "path": "a.jsonl"}],
                              "output": {"dir": "out", "compression": codec}})
        assert _direct(mix)[0] == 0, codec
        assert len(pl.read_parquet(tmp_path / "out" / codec / "train.parquet")) == 40

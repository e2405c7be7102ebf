"""Pretraining end to end on real mocap: the loss falls, the report and bundle are written, a killed run resumes.

Uses the full mocap set when it is present (CI has it at ../shared) and the shipped sample otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.topology.sequences import default_mocap_path, load_sequences
from training.occlusion import OCCLUSION_KINDS

REPO = Path(__file__).resolve().parent.parent


def smoke_config(tmp_path: Path, **overrides) -> Path:
    """A tiny run: few sequences, few steps; styles chosen from what the available data has."""
    data = load_sequences(default_mocap_path())
    styles = [name for i, name in enumerate(data.style_names) if np.any(data.styles == i)]  # styles with sequences
    train, test = (styles[:-1], styles[-1:]) if len(styles) > 1 else (styles, styles)
    values = {"max_sequences": 48, "epochs": 4, "batch_size": 16, "warmup_steps": 2, "checkpoint_every": 2,
              "lr": 2e-3, "train_styles": train, "test_styles": test, **overrides}
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def log_rows(run_dir: Path) -> list[dict]:
    """Complete lines of the training log (a kill may cut the last one short)."""
    rows = []
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def losses(run_dir: Path) -> list[float]:
    return [row["loss"] for row in log_rows(run_dir)]


def planned_steps(run_dir: Path) -> int:
    return json.loads((run_dir / "train_summary.json").read_text())["steps"]


@pytest.mark.slow
def test_tiny_pretraining_learns_and_writes_report_and_bundle(tmp_path):
    config = smoke_config(tmp_path)
    out = tmp_path / "models" / "tiny.hetskel"
    done = run_cli("report", "--config", str(config), "--run-dir", str(tmp_path / "run"), "--out", str(out),
                   "--no-baseline", "--no-ablations", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    history = losses(tmp_path / "run" / "pretrain")
    assert len(history) == planned_steps(tmp_path / "run" / "pretrain") >= 4
    assert np.mean(history[-3:]) < np.mean(history[:3]), f"loss did not fall: {history}"
    report = json.loads(out.with_suffix(".report.json").read_text())
    for mode in ("3d", "2d", "fused"):
        assert 0.0 <= report["linear"][mode]["top1"] <= 1.0
    for kind in OCCLUSION_KINDS:  # occluded 3D alone, with an occluded 2D view, with a 2D view that sees it all
        assert {f"{kind} / {m}" for m in ("3d", "fused", "fused, 2D clear")} <= set(report["occluded"])
    assert out.with_suffix(".report.md").read_text().startswith("# hetskel_ros model report")
    assert (tmp_path / "models" / "tiny_plots" / "confusion_fused.png").stat().st_size > 1000
    bundle = load_bundle(out)
    assert bundle.onnx and bundle.label_names == list(load_sequences(default_mocap_path()).label_names)
    assert bundle.provenance["git_commit"] and bundle.provenance["data_credit"].startswith("Bandai Namco")


@pytest.mark.slow
def test_killed_pretraining_resumes_losing_at_most_one_interval(tmp_path):
    config = smoke_config(tmp_path, epochs=8, checkpoint_every=3)
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "training.cli", "pretrain", "--config", str(config), "--run-dir", str(run_dir),
            "--quiet"]
    first = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoint.pt").exists() or len(losses(run_dir)) < 5:
        assert first.poll() is None and time.monotonic() < deadline, "first run ended before it could be killed"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    logged_before_kill = len(losses(run_dir))
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed_from = json.loads((run_dir / "train_summary.json").read_text())["resumed_from"]
    redone = logged_before_kill - resumed_from
    # the promise: at most one interval lost (a kill inside the checkpoint save redoes exactly the interval)
    assert 0 <= redone <= 3, f"{redone} steps were redone; the checkpoint interval is 3"
    steps = [row["step"] for row in log_rows(run_dir)]
    assert steps == list(range(1, planned_steps(run_dir) + 1))  # each step logged once, the redone ones too


@pytest.mark.slow
def test_a_damaged_checkpoint_is_one_line_naming_it_and_restart_trains_from_step_0(tmp_path):
    config = smoke_config(tmp_path, max_sequences=16, epochs=2, batch_size=16, checkpoint_every=1)
    run_dir = tmp_path / "run"
    args = ["pretrain", "--config", str(config), "--run-dir", str(run_dir), "--quiet"]
    assert run_cli(*args).returncode == 0
    checkpoint = run_dir / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    for damage in (b"", whole[: len(whole) // 2]):  # empty, truncated
        checkpoint.write_bytes(damage)
        failed = run_cli(*args)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
        errors = [line for line in failed.stderr.splitlines() if line.startswith("hetskel-train:")]
        assert len(errors) == 1 and str(checkpoint) in errors[0] and "--restart" in errors[0], failed.stderr
    restarted = run_cli(*args, "--restart")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert [row["step"] for row in log_rows(run_dir)] == list(range(1, planned_steps(run_dir) + 1))
    assert json.loads((run_dir / "train_summary.json").read_text())["resumed_from"] == 0


@pytest.mark.slow
def test_torchrun_data_parallel_pretraining_on_cpu(tmp_path):
    """Two gloo processes (what `torchrun --nproc_per_node=N` does on GPUs with nccl) train one model together."""
    config = smoke_config(tmp_path, max_sequences=16, epochs=2, batch_size=8, threads=1)
    run_dir = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "training.cli", "pretrain",
                           "--config", str(config), "--run-dir", str(run_dir), "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["processes"] == 2
    assert [row["step"] for row in log_rows(run_dir)] == list(range(1, summary["steps"] + 1))  # one log, rank 0
    assert done.stdout.count("pretraining done") == 1

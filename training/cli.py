"""``hetskel-train``: pretrain, evaluate, export, or do all three and write the report.

  hetskel-train pretrain --config training/configs/default.yaml --run-dir runs/default
  hetskel-train evaluate --run-dir runs/default
  hetskel-train export   --run-dir runs/default --out models/default.hetskel
  hetskel-train report   --config training/configs/default.yaml --run-dir runs/default --out models/default.hetskel
Runs resume from their checkpoint when started again with the same --run-dir.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

from hetskel_ros.model.bundle import Bundle, save_bundle, state_to_numpy
from hetskel_ros.model.export import export_onnx
from hetskel_ros.topology import load_unified

from . import metrics
from .objectives import OBJECTIVES
from .report import ablation, ablations, evaluate, supervised_baseline
from .train import (
    CheckpointError,
    Data,
    TrainConfig,
    build_model,
    discard_run_state,
    load_data,
    pretrain,
    read_checkpoint,
    read_log,
)
from .words import LANGUAGE_MODEL

DATA_CREDIT = "Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_run(run_dir: Path, data: Data | None = None) -> tuple[TrainConfig, torch.nn.Module, Data]:
    """The config, trained model and data of a finished (or interrupted) run directory."""
    cfg = TrainConfig.load(run_dir / "config.yaml")
    data = data or load_data(cfg)
    model = build_model(cfg, data.label_names, data.topologies)
    state = read_checkpoint(run_dir / "checkpoint.pt")["objective"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return cfg, model.eval(), data


def make_bundle(model, data: Data, head: dict, provenance: dict, label_names: list[str] | None = None) -> Bundle:
    """The shipped model: encoder + the shared linear head fitted on frozen features, with its ONNX graph.

    ``label_names`` (default: the data's): the head's classes, e.g. a merged vocabulary of several data sets."""
    names = list(label_names if label_names is not None else data.label_names)
    weight = torch.from_numpy(np.asarray(head["weight"], np.float32))
    if weight.shape[0] != model.classifier.out_features:  # a head over another vocabulary than pretraining's
        model.cfg = replace(model.cfg, num_classes=weight.shape[0])
        model.classifier = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(torch.from_numpy(np.asarray(head["bias"], np.float32)))
    skeleton = load_unified()
    return Bundle(config=model.cfg, unified_joints=list(skeleton.names), label_names=names,
                  normalization=data.normalization.to_dict(skeleton), provenance=provenance,
                  weights=state_to_numpy(model), onnx=export_onnx(model))


def provenance(cfg: TrainConfig, data: Data, results: dict, run_dir: Path) -> dict:
    summary_path = run_dir / "train_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return {
        "data": data.source, "data_credit": DATA_CREDIT,
        "train_styles": cfg.train_styles, "test_styles": cfg.test_styles,
        "train_sequences": len(data.train), "test_sequences": len(data.test),
        "command": " ".join(shlex.quote(a) for a in ["hetskel-train", *sys.argv[1:]]),
        "git_commit": git_commit(), "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "objective": cfg.objective, "epochs": cfg.epochs, "language_model": LANGUAGE_MODEL,
        "training": summary, "metrics": {k: v for k, v in results.items() if k in ("linear", "deployed_head")},
    }


def plot_loss(run_dir: Path, path: Path) -> None:
    log = read_log(run_dir)
    if not log:
        return
    plt = metrics._pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in [k for k in log[-1] if k not in ("step", "epoch")]:
        ax.plot([r["epoch"] for r in log], [r[key] for r in log], label=key)
    ax.set_xlabel("epoch"), ax.set_yscale("log"), ax.legend(), ax.set_title("pretraining loss")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def restart(args) -> None:
    """``--restart``: forget what an earlier run left in the run directory (e.g. a damaged checkpoint)."""
    if args.restart and os.environ.get("RANK", "0") == "0":
        removed = discard_run_state(Path(args.run_dir))
        print(f"--restart: removed {len(removed)} file(s) of the earlier run in {args.run_dir}")


def cmd_pretrain(args) -> int:
    cfg = TrainConfig.load(args.config, data=args.data, epochs=args.epochs)
    if args.objective and args.objective != cfg.objective:  # the file's objective_args belong to its objective
        cfg = replace(cfg, objective=args.objective, objective_args={})
    restart(args)
    pretrain(cfg, Path(args.run_dir), progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line rather than one per process
        print(f"pretraining done: {args.run_dir}/checkpoint.pt")
    return 0


def cmd_evaluate(args) -> int:
    run_dir = Path(args.run_dir)
    cfg, model, data = load_run(run_dir)
    results = evaluate(model, data, run_dir / "eval", seed=cfg.seed)
    results.pop("_head")
    metrics.write_report(results, run_dir / "eval" / "report.json", run_dir / "eval" / "report.md",
                         label_names=data.label_names, title=f"Evaluation of {run_dir}")
    print(json.dumps({"linear": results["linear"], "deployed_head": results["deployed_head"]}, indent=2))
    return 0


def write_outputs(cfg: TrainConfig, model, data: Data, results: dict, run_dir: Path, out: Path) -> None:
    """The bundle, and beside it its report (JSON + Markdown), training config and plots."""
    head = results.pop("_head")
    save_bundle(make_bundle(model, data, head, provenance(cfg, data, results, run_dir)), out)
    metrics.write_report(results, out.with_suffix(".report.json"), out.with_suffix(".report.md"),
                         label_names=data.label_names, title=f"hetskel_ros model report: {out.name}")
    (out.parent / f"{out.stem}.train.yaml").write_text(yaml.safe_dump(cfg.__dict__, sort_keys=False))
    plot_loss(run_dir, out.parent / f"{out.stem}_plots" / "loss.png")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.report.md')}")


def protocol_tables(cfg: TrainConfig, model, data: Data, names: list[str] | None = None) -> dict[str, dict]:
    """Every registered data set on its standard protocol; a set the run did not pretrain on is a transfer row."""
    from .datasets import load_dataset, registry
    from .protocols import evaluate_set

    tables = {}
    seen = tuple(data.datasets) or ("bandai",)  # a single-set run pretrained on the mocap's training styles
    for name in names or list(registry()):
        loaded = data.datasets.get(name) or load_dataset(name, sample=cfg.sample_data)
        tables[name] = {**evaluate_set(model, data.normalization, loaded, cfg.seed,
                                       pretrained_on=seen),
                        "pretrained_on_its_training_split": name in data.datasets}
    return tables


def cmd_protocols(args) -> int:
    """Per-data-set tables of a trained run (encoder against the raw-joint baselines), to run_dir/protocols.*"""
    from .protocols import format_tables

    run_dir = Path(args.run_dir)
    cfg, model, data = load_run(run_dir)
    tables = protocol_tables(cfg, model, data, args.datasets)
    (run_dir / "protocols.json").write_text(json.dumps(tables, indent=2))
    text = format_tables(tables)
    (run_dir / "protocols.md").write_text(text + "\n")
    print(text)
    return 0


def cmd_export(args) -> int:
    """Evaluate a trained run and write its bundle and report (no baseline, no ablations)."""
    run_dir, out = Path(args.run_dir), Path(args.out)
    cfg, model, data = load_run(run_dir)
    results = evaluate(model, data, out.parent / f"{out.stem}_plots", seed=cfg.seed)
    results["training"] = json.loads((run_dir / "train_summary.json").read_text())
    write_outputs(cfg, model, data, results, run_dir, out)
    return 0


def cmd_report(args) -> int:
    """Pretrain, evaluate, train the baseline and ablations, export the bundle, write the report beside it."""
    cfg = TrainConfig.load(args.config, data=args.data, epochs=args.epochs)
    run_dir, out = Path(args.run_dir), Path(args.out)
    restart(args)
    if cfg.datasets:  # several real data sets: per-set protocols, transfer, heterogeneity (training/union.py)
        from .union import union_report

        parts = tuple(p for p in (args.parts or "main").split(",") if p)
        union_report(cfg, run_dir, out, parts, progress=not args.quiet)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.report.md')}")
        return 0
    data = load_data(cfg)
    began = time.monotonic()
    pretrain(cfg, run_dir / "pretrain", data, progress=not args.quiet)
    _, model, _ = load_run(run_dir / "pretrain", data)
    results = evaluate(model, data, out.parent / f"{out.stem}_plots", seed=cfg.seed)
    results["training"] = json.loads((run_dir / "pretrain" / "train_summary.json").read_text())
    if not args.no_baseline:
        results["supervised_baseline"] = supervised_baseline(cfg, data, run_dir / "supervised", not args.quiet)
    for name in [] if args.no_ablations else ablations(cfg):
        results[f"ablation_{name}"] = ablation(cfg, data, name, run_dir / name, not args.quiet)
    results["report_seconds"] = time.monotonic() - began
    write_outputs(cfg, model, data, results, run_dir / "pretrain", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hetskel-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pretrain", "report"):
        p = sub.add_parser(name)
        p.add_argument("--config", default="training/configs/default.yaml")
        p.add_argument("--data", help="mocap .npz (default: ../shared full set if present, else the shipped sample)")
        p.add_argument("--epochs", type=float)
        p.add_argument("--run-dir", required=True)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--restart", action="store_true",
                       help="discard the run directory's checkpoints and logs and train from step 0")
    sub.choices["pretrain"].add_argument("--objective", choices=sorted(OBJECTIVES))
    sub.choices["report"].add_argument("--out", required=True, help="bundle path, e.g. models/default.hetskel")
    sub.choices["report"].add_argument("--no-baseline", action="store_true")
    sub.choices["report"].add_argument("--no-ablations", action="store_true")
    sub.choices["report"].add_argument(
        "--parts", help="multi-data-set configs: comma-separated parts of the report to run: main (always), lodo, "
        "single, supervised, ablations, seeds, each optionally for some sets (lodo:bandai+nw_ucla); default: main; "
        "finished trainings are reused")
    p = sub.add_parser("evaluate")
    p.add_argument("--run-dir", required=True)
    p = sub.add_parser("protocols", help="every data set on its standard protocol, against raw-joint baselines")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--datasets", nargs="*", help="names in training/configs/datasets.yaml (default: all)")
    p = sub.add_parser("export")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        return {"pretrain": cmd_pretrain, "evaluate": cmd_evaluate, "export": cmd_export, "report": cmd_report,
                "protocols": cmd_protocols}[args.command](args)
    except CheckpointError as exc:  # one line naming the file, not torch's traceback
        print(f"hetskel-train: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""``hetskel-bag``: make labelled rosbag2 bags from skeleton data, evaluate the recognizer on them, play them.

    hetskel-bag make demo_bag                               # the shipped mocap sample, 3 people, mcap
    hetskel-bag make my_bag --source ntu.npz --people 2 --per-label 3 --storage sqlite3
    hetskel-bag eval demo_bag                               # offline: as fast as possible, deterministic
    hetskel-bag eval demo_bag --mode live --rate 2          # replay into a running recognizer
    hetskel-bag play demo_bag --rate 0.5 --loop             # the bag_player node
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from hetskel_ros.ros.bagtools.bag_io import (
    DEFAULT_START_NS,
    GROUND_TRUTH_TOPIC,
    NS_PER_S,
    SKELETONS_TOPIC,
    STORAGES,
    BagError,
    BagWriteOptions,
)
from hetskel_ros.ros.bagtools.evaluate import MODES, evaluate_bag
from hetskel_ros.ros.bagtools.make import Selection, describe, make_bag
from hetskel_ros.ros.bagtools.stream import CLIP_STANDING, StreamOptions
from hetskel_ros.runtime.base import BackendError
from hetskel_ros.topology import TopologyError
from hetskel_ros.topology.sequences import sample_path


def _add_make(sub: Any) -> None:
    p = sub.add_parser("make", help="write a labelled, untrimmed multi-person bag from a sequence-set npz")
    p.add_argument("output", type=Path, help="bag directory to create")
    p.add_argument("--source", type=Path, default=None,
                   help="sequence-set npz (default: the shipped mocap sample, data/bandai_sample.npz)")
    p.add_argument("--style", default="", help="only clips of this style (mocap) / subject (NTU)")
    p.add_argument("--labels", default="", help="only these actions (comma-separated)")
    p.add_argument("--per-label", type=int, default=0, help="at most N clips per action (0: all)")
    p.add_argument("--limit", type=int, default=0, help="at most N clips in all (0: all)")
    p.add_argument("--group", default="", metavar="KEY=V1,V2",
                   help="only clips whose grouping KEY (view, subject, ...) is one of the values, e.g. view=v03")
    p.add_argument("--shared-names", default="", metavar="DATASET",
                   help="rename the labels to config/actions.yaml's shared names of this data set (e.g. nw_ucla)")
    p.add_argument("--people", type=int, default=3, help="people in the scene at once (distinct track_ids)")
    p.add_argument("--idle", type=float, nargs=2, default=(2.0, 10.0), metavar=("MIN_S", "MAX_S"),
                   help="length range of the idle gaps between clips")
    p.add_argument("--idle-kind", choices=("real", "hold"), default="real",
                   help="idle gaps from the data's real standing phases, or the last pose held with noise")
    p.add_argument("--clip-standing", choices=CLIP_STANDING, default="idle",
                   help="ground truth of a clip's own standing phases at its start and end: idle, or the clip's action")
    p.add_argument("--spacing", type=float, default=None, help="sideways distance between people (native units)")
    p.add_argument("--noise", type=float, default=None, help="std of the standing-still jitter (native units)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", choices=sorted(STORAGES), default="mcap")
    p.add_argument("--start-time", type=float, default=DEFAULT_START_NS / NS_PER_S,
                   help="stamp of the first frame, seconds since the epoch")
    p.add_argument("--topic", default=SKELETONS_TOPIC, help="SkeletonArray topic")
    p.add_argument("--ground-truth-topic", default=GROUND_TRUTH_TOPIC, help="ActionArray topic of the labels")
    p.add_argument("--frame-id", default="world")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag")


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="run the recognizer over a labelled bag and score it")
    p.add_argument("bag", type=Path)
    p.add_argument("--mode", choices=MODES, default="offline",
                   help="offline: the node's pipeline over the bag, as fast as possible; live: replay into a "
                        "running recognizer node in real time (times --rate)")
    p.add_argument("--config", type=Path, default=None, help="recognizer parameter file (config/recognize.yaml)")
    p.add_argument("--model", default="", help="model bundle (default: the shipped models/default.hetskel)")
    p.add_argument("--backend", default="", help="inference backend(s), e.g. onnxruntime")
    p.add_argument("--device", default="", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0: the config's)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="any recognizer parameter, e.g. -p threshold:=0.3 (YAML value; repeatable)")
    p.add_argument("--out", type=Path, default=None, help="report directory (default runs/bag_eval/<bag>/<mode>)")
    p.add_argument("--rate", type=float, default=1.0, help="live: replay speed factor")
    p.add_argument("--in-process", action="store_true",
                   help="live: run the recognizer node in this process instead of via hetskel-launch")
    p.add_argument("--no-reference", action="store_true",
                   help="live: skip the offline reference run (no dropped-window count or label agreement)")


def _add_play(sub: Any) -> None:
    p = sub.add_parser("play", help="publish a bag with its recorded timing (the bag_player node)")
    p.add_argument("bag", type=Path)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--loop", action="store_true")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--topics", nargs="*", default=[], help="topics to play (default: all)")
    p.add_argument("--remap", nargs="*", default=[], help="from:=to topic remappings")
    p.add_argument("--wait-for", nargs="*", default=["any"],
                   help="topics that need a subscriber before playing ('any': some played topic; none: at once)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hetskel-bag", description=__doc__.split("\n\n")[0].replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(dest="command", required=True)
    _add_make(sub)
    _add_eval(sub)
    _add_play(sub)
    return p


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.model:
        out["model"] = str(Path(args.model).expanduser().resolve())
    if args.backend:
        out["backend"] = args.backend
    if args.device:
        out["device"] = args.device
    if args.threads:
        out["threads"] = args.threads
    for item in args.param:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"--param {item!r} is not NAME:=VALUE")
        out[name] = yaml.safe_load(value)
    return out


def cmd_make(args: argparse.Namespace) -> int:
    source = args.source or sample_path()
    key, _, values = args.group.partition("=")
    selection = Selection(args.style, tuple(x for x in args.labels.split(",") if x), args.per_label, args.limit,
                          key, tuple(v for v in values.split(",") if v), args.shared_names)
    stream_options = StreamOptions(args.people, tuple(args.idle), args.spacing, args.noise, args.seed,
                                   args.idle_kind, args.clip_standing)
    write_options = BagWriteOptions(storage=args.storage, start_ns=round(args.start_time * NS_PER_S),
                                    skeletons_topic=args.topic, ground_truth_topic=args.ground_truth_topic,
                                    frame_id=args.frame_id, overwrite=args.overwrite)
    stream = make_bag(source, args.output, selection, stream_options, write_options)
    print(f"wrote {args.output} ({args.storage}): {describe(stream)}")
    print(f"  {args.topic}: hetskel_msgs/msg/SkeletonArray, {args.ground_truth_topic}: hetskel_msgs/msg/ActionArray "
          f"(ground truth, one per frame)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    out = args.out or Path("runs") / "bag_eval" / args.bag.name / args.mode
    result = evaluate_bag(args.bag, out, mode=args.mode, config=args.config, overrides=overrides_from(args),
                          rate=args.rate, in_process=args.in_process, reference=not args.no_reference)
    print(result.files["summary"].read_text(encoding="utf-8"))
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from hetskel_ros.ros.bagtools.player import main as player_main

    def as_list(values: list[str]) -> str:
        return "[" + ",".join(f"'{v}'" for v in values) + "]" if values else "['']"

    ros_args = ["--ros-args", "-p", f"bag:={args.bag}", "-p", f"rate:={float(args.rate)}",
                "-p", f"loop:={str(args.loop).lower()}", "-p", f"clock:={str(not args.no_clock).lower()}",
                "-p", f"topics:={as_list(args.topics)}", "-p", f"remap:={as_list(args.remap)}",
                "-p", f"wait_for_subscribers:={as_list(args.wait_for)}"]
    player_main(ros_args)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    commands = {"make": cmd_make, "eval": cmd_eval, "play": cmd_play}
    try:
        return commands[args.command](args)
    except (BagError, TopologyError, BackendError, ValueError, TimeoutError) as exc:
        print(f"hetskel-bag {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""``hetskel-topology``: list the topologies, show one, or summarise a mocap set mapped to the unified skeleton."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from hetskel_ros.topology.errors import TopologyError
from hetskel_ros.topology.topology import Topology, list_topologies, load_topology
from hetskel_ros.topology.unified import UnifiedSkeleton, load_unified


def _list(unified: UnifiedSkeleton) -> None:
    rows = []
    for name in list_topologies():
        topology = load_topology(name)
        covered = int(topology.coverage(unified).sum())
        rows.append((name, str(topology.num_joints), f"{topology.dims}D", f"{covered}/{unified.num_joints}"))
    header = ("name", "joints", "dims", "unified joints covered")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}")


def _show(topology: Topology, unified: UnifiedSkeleton) -> None:
    coverage = topology.coverage(unified)
    print(f"name:        {topology.name}")
    print(f"description: {topology.description}")
    print(f"file:        {topology.path}")
    print(f"joints:      {topology.num_joints}")
    print(f"dims:        {topology.dims}D ({topology.units}), up {topology.up}")
    print(f"unified joints covered: {int(coverage.sum())}/{unified.num_joints}")
    print("native joints (index name -> canonical):")
    for index, native in enumerate(topology.joints):
        print(f"  {index:3d} {native} -> {topology.canonical.get(native, '(unused)')}")
    if topology.derived:
        print("derived joints (weighted means):")
        for derived in topology.derived:
            total = sum(w for _, w in derived.sources)
            terms = " + ".join(f"{w / total:.3g}*{s}" for s, w in derived.sources)
            print(f"  {derived.joint} = {terms}")
    missing = [unified.names[i] for i in np.flatnonzero(~coverage)]
    print(f"unified joints missing: {', '.join(missing) if missing else 'none'}")
    print(f"bones: {len(topology.bones)}, flip pairs: {len(topology.flip_pairs)}")


def _mocap(path: str | None, unified: UnifiedSkeleton) -> None:
    """Map a whole mocap sequence set to the unified skeleton and report what a user would check first."""
    from hetskel_ros.topology.normalize import normalize
    from hetskel_ros.topology.sequences import default_mocap_path, load_sequences

    source = Path(path) if path else default_mocap_path()
    data = load_sequences(source)
    topology = load_topology(data.topology)
    positions, offsets = data.stacked()
    points, mask = topology.to_unified(positions, unified=unified)
    print(f"file:      {source}")
    print(f"topology:  {topology.name} ({topology.num_joints} joints) -> {unified.name}")
    print(f"sequences: {len(data)}, frames: {data.num_frames} at {data.fps:g} fps")
    print(f"actions:   {', '.join(f'{n} {int((data.labels == i).sum())}' for i, n in enumerate(data.label_names))}")
    print(f"styles:    {', '.join(f'{n} {int((data.styles == i).sum())}' for i, n in enumerate(data.style_names))}")
    present = mask.all(axis=0)
    print(f"unified joints present in every frame: {int(present.sum())}/{unified.num_joints}")
    print("segment lengths (m, median over all frames):")
    for label, a, b in (
        ("torso", "spine_base", "spine_shoulder"),
        ("upper arm", "left_shoulder", "left_elbow"),
        ("forearm", "left_elbow", "left_wrist"),
        ("thigh", "left_hip", "left_knee"),
        ("shin", "left_knee", "left_ankle"),
    ):
        ia, ib = unified.index(a), unified.index(b)
        both = mask[:, ia] & mask[:, ib]
        if both.any():
            length = np.median(np.linalg.norm(points[both, ia] - points[both, ib], axis=-1))
            print(f"  {label:<10} {length:.3f}")
    facing = []
    shoulders = unified.index(unified.shoulders[0]), unified.index(unified.shoulders[1])
    for start, end in itertools.pairwise(offsets):
        body = normalize(points[start:end], mask[start:end], unified, up=topology.up)
        chest = np.cross(body[0, shoulders[0]] - body[0, shoulders[1]], [0.0, 1.0, 0.0])
        facing.append(chest[2] > 0)
    print(f"after normalisation, sequences whose chest faces +Z: {100 * np.mean(facing):.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hetskel-topology", description="Skeleton topologies and their map to the unified skeleton."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every topology: name, joints, dims, unified joints covered")
    show = sub.add_parser("show", help="one topology in detail")
    show.add_argument("name", help="a topology name from 'list', or a path to a topology YAML file")
    mocap = sub.add_parser("mocap", help="map a mocap sequence set (default: the real mocap) and summarise it")
    mocap.add_argument("path", nargs="?", help="an npz in the mocap format (default: full set, else the sample)")
    args = parser.parse_args(argv)
    try:
        unified = load_unified()
        if args.command == "list":
            _list(unified)
        elif args.command == "mocap":
            _mocap(args.path, unified)
        else:
            _show(load_topology(args.name), unified)
    except TopologyError as exc:
        print(f"hetskel-topology: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hetskel-topology``: list the shipped topologies or show one, so a user can check a sensor's mapping."""

from __future__ import annotations

import argparse
import sys

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hetskel-topology", description="Skeleton topologies and their map to the unified skeleton."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every topology: name, joints, dims, unified joints covered")
    show = sub.add_parser("show", help="one topology in detail")
    show.add_argument("name", help="a topology name from 'list', or a path to a topology YAML file")
    args = parser.parse_args(argv)
    try:
        unified = load_unified()
        if args.command == "list":
            _list(unified)
        else:
            _show(load_topology(args.name), unified)
    except TopologyError as exc:
        print(f"hetskel-topology: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

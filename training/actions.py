"""The merged action vocabulary of config/actions.yaml: each data set's labels -> one list of shared names.

Why a file: which labels of different data sets are the same action is a judgement (in-place walking is not walking),
so it is data a reader can check, and a behaviour tree's label names follow from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from hetskel_ros.paths import config_dir


@dataclass(frozen=True)
class Vocabulary:
    names: tuple[str, ...]  # shared action names, in order of first appearance
    index: dict[str, np.ndarray]  # data set -> (its labels,) index into names

    def labels(self, dataset: str, local: np.ndarray) -> np.ndarray:
        """A data set's label indices as indices into the merged names."""
        return self.index[dataset][np.asarray(local, dtype=np.int64)]


def merged_vocabulary(label_names: dict[str, tuple[str, ...]], path: Path | None = None) -> Vocabulary:
    """The merged vocabulary of the given data sets (name -> its label names, in order).

    A shared name reached from two data sets without either mapping it explicitly is refused (an accidental merge),
    as is a mapping of a label the data set does not have.
    """
    path = path or config_dir() / "actions.yaml"
    raw = (yaml.safe_load(path.read_text()) or {}).get("datasets") or {}
    names: list[str] = []
    explicit: dict[str, set[str]] = {}
    owners: dict[str, str] = {}
    index = {}
    for dataset, labels in label_names.items():
        mapping = raw.get(dataset) or {}
        unknown = sorted(set(mapping) - set(labels))
        if unknown:
            raise ValueError(f"{path}: datasets.{dataset} maps labels {unknown} that data set does not have")
        rows = []
        for label in labels:
            name = str(mapping.get(label, label))
            if name in owners and owners[name] != dataset and not (label in mapping or explicit.get(name)):
                raise ValueError(f"{path}: '{label}' of {dataset} and a label of {owners[name]} are both called "
                                 f"'{name}'; map it explicitly under datasets.{dataset} if they are one action")
            if label in mapping:
                explicit.setdefault(name, set()).add(dataset)
            if name not in names:
                names.append(name)
                owners[name] = dataset
            rows.append(names.index(name))
        index[dataset] = np.array(rows, dtype=np.int64)
    return Vocabulary(tuple(names), index)

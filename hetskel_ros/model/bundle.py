"""The model bundle: one file that holds everything inference needs.

A bundle is a zip archive (``*.hetskel``):
  meta.json    model config, unified joint names, topology names (prompt rows), normalisation settings,
               label names, provenance (data, command, git commit, metrics)
  weights.npz  the state dict as numpy arrays (prompts and the semantic word table included)
  model.onnx   the exported inference graph, when exported (the ONNX Runtime and TensorRT backends use it)
  head.npz     optional: a taught linear head on the graph's features (hetskel_ros.model.head; meta.json 'head'),
               whose labels replace the graph's own head; the graph stays the encoder's, byte for byte
  calibration.json and any other member: kept as they are by load_bundle/save_bundle (``parts``)
Reading the metadata and the graph needs neither torch nor ROS; building the PyTorch model needs torch.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import ModelConfig
from .head import HEAD_PART, LinearHead

if TYPE_CHECKING:
    from .model import HetSkelModel

FORMAT_VERSION = 1
OWN_PARTS = frozenset({"meta.json", "weights.npz", "model.onnx", HEAD_PART})


class BundleError(ValueError):
    """A bundle file that is missing, unreadable or incomplete; the message names the file and the part."""


@dataclass
class Bundle:
    config: ModelConfig
    unified_joints: list[str]
    label_names: list[str]
    normalization: dict = field(default_factory=lambda: {"yaw_align": True})
    provenance: dict = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    onnx: bytes | None = None
    path: Path | None = None
    head: LinearHead | None = None  # a taught head outside the graph (its rows are label_names)
    parts: dict[str, bytes] = field(default_factory=dict)  # other archive members (calibration.json), verbatim

    @property
    def topologies(self) -> list[str]:
        return list(self.config.topologies)

    def topology_index(self, name: str) -> int:
        """Row of the topology's prompts; a topology unseen in training has none."""
        try:
            return self.config.topologies.index(name)
        except ValueError:
            raise BundleError(
                f"topology {name!r} has no prompts in bundle {self.path}; it knows {list(self.config.topologies)}"
            ) from None

    def build_model(self) -> HetSkelModel:
        """The PyTorch model with the bundle's weights, in eval mode."""
        import torch

        from .model import HetSkelModel

        model = HetSkelModel(self.config)
        state = {k: torch.from_numpy(np.array(v)) for k, v in self.weights.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        needed = [k for k in missing if not k.startswith("projectors.")]
        if needed or unexpected:
            raise BundleError(f"bundle {self.path} does not fit the model: missing {needed}, unexpected {unexpected}")
        return model.eval()

    def meta(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "unified_joints": list(self.unified_joints),
            "label_names": list(self.label_names),
            "normalization": self.normalization,
            "provenance": self.provenance,
            **({"head": self.head.info} if self.head is not None else {}),
        }

    @property
    def graph_labels(self) -> int:
        """Outputs of the graph's own classifier (what ``config.num_classes`` and ``classifier.weight`` describe)."""
        head = self.weights.get("classifier.weight")
        return int(np.shape(head)[0]) if head is not None else int(self.config.num_classes)


def state_to_numpy(model: HetSkelModel, keep_projectors: bool = False) -> dict[str, np.ndarray]:
    """Weights for a bundle; the projectors only serve the training losses and are dropped by default."""
    return {
        k: v.detach().cpu().numpy()
        for k, v in model.state_dict().items()
        if keep_projectors or not k.startswith("projectors.")
    }


def save_bundle(bundle: Bundle, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = io.BytesIO()
    np.savez(weights, **bundle.weights)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", json.dumps(bundle.meta(), indent=2))
        zf.writestr("weights.npz", weights.getvalue())
        if bundle.onnx is not None:
            zf.writestr("model.onnx", bundle.onnx)
        if bundle.head is not None:
            zf.writestr(HEAD_PART, bundle.head.to_bytes())
        for name, data in bundle.parts.items():  # calibration.json: re-saving a bundle must not lose it
            if name not in OWN_PARTS:
                zf.writestr(name, data)
    tmp.replace(path)  # never leave a half-written bundle where a node would load it
    bundle.path = path
    return path


def load_bundle(path: str | Path, *, weights: bool = True) -> Bundle:
    """Read a bundle; every defect (not a zip, a part missing or unreadable, metadata of the wrong shape, labels
    that do not fit the model's head) is a BundleError naming the file and the part, never a traceback later."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"model bundle not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for part in ("meta.json", "weights.npz"):
                if part not in names:
                    raise BundleError(f"model bundle {path} lacks {part}")
            meta = _read_part(path, "meta.json", lambda: json.loads(zf.read("meta.json")))
            arrays = _read_part(path, "weights.npz", lambda: _read_weights(zf.read("weights.npz"))) if weights else {}
            onnx = _read_part(path, "model.onnx", lambda: zf.read("model.onnx")) if "model.onnx" in names else None
            head_bytes = _read_part(path, HEAD_PART, lambda: zf.read(HEAD_PART)) if HEAD_PART in names else None
            parts = {name: _read_part(path, name, lambda name=name: zf.read(name))
                     for name in sorted(names - OWN_PARTS) if not name.endswith("/")}
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"model bundle {path} is not readable: {exc}") from exc
    _check_meta(path, meta)
    try:
        # bundles written before per-joint fusion existed fused by the plain mean; they must keep doing so
        config = ModelConfig.from_dict({"fusion": "mean", **meta["config"]})
    except (TypeError, ValueError) as exc:
        raise BundleError(f"model bundle {path}: meta.json 'config' is not a model configuration: {exc}") from None
    head = None
    if head_bytes is not None:
        info = meta.get("head", {})
        head = _read_part(path, HEAD_PART, lambda: LinearHead.from_bytes(head_bytes,
                                                                          info if isinstance(info, dict) else {}))
    bundle = Bundle(
        config=config,
        unified_joints=meta["unified_joints"],
        label_names=meta["label_names"],
        normalization=meta.get("normalization", {}),
        provenance=meta.get("provenance", {}),
        weights=arrays,
        onnx=onnx,
        path=path,
        head=head,
        parts=parts,
    )
    _check_head(bundle)
    return bundle


def _read_part(path: Path, part: str, read):
    """``read()`` of one archive member; any failure (a corrupt member, garbage JSON or npz) names file and part."""
    try:
        return read()
    except Exception as exc:  # zlib, zipfile, json and numpy each raise their own types for damaged bytes
        raise BundleError(f"model bundle {path}: {part} is not readable ({type(exc).__name__}: {exc})") from None


def _read_weights(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def _check_meta(path: Path, meta: object) -> None:
    """meta.json must be the mapping ``Bundle.meta`` writes, in this format version."""
    where = f"model bundle {path}: meta.json"
    if not isinstance(meta, dict):
        raise BundleError(f"{where} must be a JSON object, got a JSON {type(meta).__name__}")
    version = meta.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise BundleError(f"{where} has format_version {version!r}, expected the number {FORMAT_VERSION}")
    for key in ("config", "unified_joints", "label_names"):
        if key not in meta:
            raise BundleError(f"{where} lacks '{key}'")
    if not isinstance(meta["config"], dict):
        raise BundleError(f"{where} 'config' must be a JSON object, got {type(meta['config']).__name__}")
    for key in ("unified_joints", "label_names"):
        value = meta[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BundleError(f"{where} '{key}' must be a list of names, got {value!r:.80}")
    for key in ("normalization", "provenance"):
        if not isinstance(meta.get(key, {}), dict):
            raise BundleError(f"{where} '{key}' must be a JSON object, got {type(meta[key]).__name__}")


def _check_head(bundle: Bundle) -> None:
    """One label per output of the classifier: a mismatch would only show on the first window (IndexError)."""
    labels = len(bundle.label_names)
    graph = bundle.graph_labels if bundle.head is not None else labels  # a taught head: the graph keeps its own
    sizes = {"config num_classes": bundle.config.num_classes} if bundle.config.num_classes else {}
    head = bundle.weights.get("classifier.weight")
    if head is not None:
        sizes["classifier.weight"] = int(np.shape(head)[0])
    wrong = {name: size for name, size in sizes.items() if size != graph}
    if bundle.head is not None:
        if bundle.head.classes != labels:
            wrong[HEAD_PART] = bundle.head.classes
        if bundle.head.feature_dim != bundle.config.feature_dim:
            raise BundleError(f"model bundle {bundle.path}: {HEAD_PART} reads {bundle.head.feature_dim} features, "
                              f"the encoder gives {bundle.config.feature_dim}")
    if wrong:
        said = ", ".join(f"{name} {size}" for name, size in wrong.items())
        raise BundleError(f"model bundle {bundle.path}: {labels} label_names but the model's head has {said} "
                          f"outputs; the labels must be the classes the head was trained on, in order")

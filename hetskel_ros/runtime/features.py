"""The feature API on a deployed bundle: ``open_extractor`` loads a bundle and an inference backend (ONNX Runtime on
CPU by default, as the node does) and returns a :class:`hetskel_ros.model.features.FeatureExtractor`.

    extractor = open_extractor("models/default.hetskel")
    features = extractor.sequence_set_features(load_sequences("../shared/data/utd-mhad/utd_mhad.npz"))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hetskel_ros.model.bundle import Bundle, load_bundle
from hetskel_ros.model.features import FeatureExtractor
from hetskel_ros.runtime.backends import load_backend


def open_extractor(bundle: str | Path | Bundle, backend: Sequence[str] | str = "onnxruntime",
                   **options) -> FeatureExtractor:
    """A feature extractor over ``bundle`` (a path or a loaded Bundle) on the first backend of ``backend`` that
    loads; ``options`` are the backend's (e.g. threads=1)."""
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    return FeatureExtractor.from_bundle(loaded, load_backend(loaded, backend, **options).infer)

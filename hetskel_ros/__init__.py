"""Heterogeneous-skeleton action recognition for ROS 2.

Layers, each importing only the ones before it:
``topology`` (joint maps, unified skeleton; numpy) <- ``model`` (torch modules) <-
``runtime`` (inference backends) <- ``ros`` (nodes, adapters, launch glue).
"""

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
# Config files live beside the package in a source checkout and under share/ when installed by colcon.
__version__ = "0.1.0"

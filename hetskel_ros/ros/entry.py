"""Console entry points of the nodes and of ``hetskel-launch``: Ctrl-C is a clean stop from the first instant.

A node's module imports heavy libraries (onnxruntime, OpenCV, MediaPipe) before its ``main`` installs the node's
own signal handling (hetskel_ros.ros.node_main.StopSignals), and a launch is often interrupted in that second: the
default handler then ends the process with a KeyboardInterrupt traceback. Until ``main`` takes over, these
wrappers take SIGINT and SIGTERM as a quiet exit with status 0.
"""

from __future__ import annotations

import importlib
import signal
from functools import partial
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stop_requested = False


def _exit_quietly(_signum: int, _frame: FrameType | None) -> None:
    global _stop_requested
    _stop_requested = True
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # the exit itself is not interrupted again
    raise SystemExit(0)


def run_main(module: str) -> Any:
    """Import ``module`` with Ctrl-C meaning "exit 0", then run its ``main()`` (which installs its own handling)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _exit_quietly)
    try:
        main = importlib.import_module(module).main
    except Exception:
        # the SystemExit raised inside a C extension's initialisation (rclpy's) comes out as an ImportError
        if _stop_requested:
            raise SystemExit(0) from None
        raise
    return main()


# the console scripts of setup.py (each calls one of these with no arguments)
recognizer = partial(run_main, "hetskel_ros.ros.recognizer_node")
bag_player = partial(run_main, "hetskel_ros.ros.bagtools.player")
video_source = partial(run_main, "hetskel_ros.ros.video_source")
mediapipe_pose = partial(run_main, "hetskel_ros.ros.mediapipe_pose")
action_reactor = partial(run_main, "hetskel_ros.ros.action_reactor")
launcher = partial(run_main, "hetskel_ros.ros.launcher")
teach = partial(run_main, "hetskel_ros.ros.teach")
teach_recorder = partial(run_main, "hetskel_ros.ros.teach_recorder")

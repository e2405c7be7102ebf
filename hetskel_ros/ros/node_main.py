"""The console entry point every node of the package shares: start, spin, and end cleanly.

Ctrl-C and SIGTERM end a node with exit status 0, also while it is still starting and also when the signal comes
again during the shutdown (a terminal and `ros2 launch` both deliver Ctrl-C twice); a configuration error ends it
with one line naming what is wrong and no traceback. A node started by ``hetskel-launch`` dies with it. A SIGTERM
that arrives while the node is already ending (its clean-up hangs, and the launcher escalates) prints every thread's
Python stack to stderr, so that the hang shows where it waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import faulthandler
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import rclpy
import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node

from hetskel_ros.ros.launcher import PARENT_PID_ENV

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
RCLError = rclpy_implementation.RCLError


class StopSignals:
    """SIGINT and SIGTERM as a ROS node must take them.

    The first signal stops the node: a KeyboardInterrupt in the main thread, so that even a slow start-up (loading
    a model) ends at once; rclpy's own handlers, which chain to these, shut the context down and wake the executor.
    Every later signal, and any signal once the node is shutting down, is ignored: an exception raised in the
    clean-up would end the process with a traceback and "exit code -2" instead of a clean exit. A node whose
    clean-up hangs is still ended by the SIGKILL that `ros2 launch` and `hetskel-launch` send last.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.stopping = False

    def install(self) -> None:
        """Must run before ``rclpy.init``: rclpy installs its handlers over these and calls them after its own."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    @staticmethod
    def ignore_from_now_on() -> None:
        """For the rest of the process. Python's exit puts back the default action of signals that have a Python
        handler (a Ctrl-C then kills the exiting process: status -2), but leaves ignored ones ignored."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping and _raising_here_is_lost(frame):
            # a KeyboardInterrupt raised inside an import that native code started (protobuf, MediaPipe) is printed
            # by that code as a traceback, and one raised in a finalizer (__del__) is printed and swallowed: deliver
            # the signal again once that code has had time to finish
            threading.Timer(RETRY_S, os.kill, (os.getpid(), signum)).start()
            return
        self.received.append(signum)
        if len(self.received) == 1 and not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt


RETRY_S = 0.05


def _raising_here_is_lost(frame: FrameType | None) -> bool:
    """Whether an exception raised in the interrupted code would not reach the node's loop: it runs an import
    (importlib's frozen bootstrap is on the stack) or a finalizer (a ``__del__``, whose exceptions Python prints as
    "Exception ignored in" and drops)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def die_with_launcher() -> bool:
    """Ask Linux for SIGTERM when the launcher that started this process dies; False if it is already gone."""
    launcher = os.environ.pop(PARENT_PID_ENV, "")
    if not launcher.isdigit():
        return True
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no parent-death signal, nothing else changes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == int(launcher)  # re-parented already: the launcher died before prctl


def check_ros_arguments(args: Sequence[str]) -> None:
    """Parameter files and ``-p`` values of the command line, read as rcl will read them, so that a missing file
    or a YAML syntax error is one line naming the file or the rule (rcl itself gives a generic "Failed to parse
    global arguments" line and an exception with its source locations). Raises ValueError."""
    in_ros_args = False
    items = list(args)
    for index, arg in enumerate(items):
        if arg == "--ros-args":
            in_ros_args = True
        elif arg == "--":
            in_ros_args = False
        elif in_ros_args and index + 1 < len(items) and arg in ("--params-file", "-p", "--param"):
            value = items[index + 1]
            if arg == "--params-file":
                try:
                    yaml.safe_load(Path(value).read_text(encoding="utf-8"))
                except OSError as exc:
                    raise ValueError(f"parameter file {value}: {exc.strerror or exc}") from None
                except yaml.YAMLError as exc:
                    raise ValueError(f"parameter file {value}: not valid YAML: {yaml_problem(exc)}") from None
            else:
                name, sep, text = value.partition(":=")
                if not sep:
                    raise ValueError(f"parameter rule '{value}': expected name:=value")
                if not text:
                    raise ValueError(f"parameter '{name}': no value after ':=' (an empty string is {name}:='')")
                try:
                    yaml.safe_load(text)
                except yaml.YAMLError as exc:
                    problem = yaml_problem(exc)
                    raise ValueError(f"parameter '{name}': value {text!r} is not valid YAML: {problem}") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong, and where (line and column count from 1)."""
    problem = getattr(exc, "problem", None) or one_line(exc)
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def read_only() -> ParameterDescriptor:
    """The descriptor of a parameter a node reads once at start: ``ros2 param set`` is refused, not ignored."""
    return ParameterDescriptor(read_only=True)


def declare_config(node: Node, cls: type) -> Any:
    """A config dataclass read from the node's parameters: every field declared read-only with its default (a
    tuple default as a ROS list, read back as a tuple)."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        default = getattr(cls, item.name)
        value = node.declare_parameter(item.name, list(default) if isinstance(default, tuple) else default,
                                       read_only()).value
        values[item.name] = tuple(value) if isinstance(default, tuple) else value
    return cls(**values)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, without rcl's source locations (", at /path/file.c:123")."""
    text = re.sub(r",? at /\S+\.c:\d+", "", str(exc))
    if isinstance(exc, NameValidationException):
        text = text.splitlines()[0] if text else text  # drops the name and the caret under the bad character
    return " ".join(text.split())


def run_node(program: str, make_node: Callable[[], Node], args: list[str] | None = None, *,
             done: Callable[[Node], bool] | None = None,
             config_errors: tuple[type[BaseException], ...] = (ValueError,)) -> None:
    """Spin the node `make_node()` builds until shutdown, or until `done(node)` says its work is finished."""
    signals = StopSignals()
    executor = None
    node = None
    try:
        signals.install()
        if not die_with_launcher():
            return
        check_ros_arguments(sys.argv if args is None else args)
        try:
            rclpy.init(args=args)
        except RCLError as exc:  # a command-line rule rcl cannot parse
            raise ValueError(f"bad ROS arguments: {one_line(exc).removeprefix('failed to initialize rcl: ')}") from None
        # The executor exists before the (possibly slow) node start-up: a signal then only shuts the context down
        # and spinning returns, instead of failing to create an executor on a context that is already gone.
        executor = SingleThreadedExecutor()
        node = make_node()
        executor.add_node(node)
        if done is None:
            executor.spin()
        else:
            while rclpy.ok() and not done(node):
                executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (*config_errors, ValueError, ParameterException, NameValidationException) as exc:
        if signals.received:  # Ctrl-C during start-up: declaring a parameter then fails on the shut-down context
            return
        # a bad parameter or an unreadable file: say which, in one line and without a traceback (exit status 1)
        raise SystemExit(f"{program}: {one_line(exc)}") from None
    except Exception:
        if rclpy.ok():
            raise
        # a signal shut ROS down while the node was being built: a normal, clean exit
    finally:
        signals.stopping = True  # from here on a signal changes nothing: the node is ending anyway
        # A SIGTERM now means the clean-up takes too long (a launcher escalates after its SIGINT grace): print where
        # every thread waits, then go on as before (the Python handler ignores it; after ignore_from_now_on, nothing)
        faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        signals.ignore_from_now_on()
        faulthandler.register(signal.SIGTERM, all_threads=True, chain=False)  # also a hang at interpreter exit

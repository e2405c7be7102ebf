"""Session-wide test setup for real ROS 2 over DDS, kept on this machine.

Set before rclpy is first imported, and inherited by every subprocess a test starts:
- ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: DDS discovery never leaves loopback.
- ROS_DOMAIN_ID: one per test run (from the pid, 1..100) unless already set, so parallel runs do not talk.
- ROS_HOME / ROS_LOG_DIR: a temporary directory, so tests never write into ~/.ros.
- PYTHONFAULTHANDLER=1: a node process that segfaults prints every thread's Python stack into its output.

Fixtures: ``ros`` (function scope) and ``ros_module`` (module scope) give a :class:`RosHarness`: an rclpy context
whose nodes spin in a background executor thread, plus waits for discovery. Everything is shut down at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("PYTHONFAULTHANDLER", "1")  # a node process that crashes prints its Python stacks
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
_ROS_HOME = Path(tempfile.mkdtemp(prefix="hetskel-test-ros-home-"))
os.environ["ROS_HOME"] = str(_ROS_HOME)
os.environ["ROS_LOG_DIR"] = str(_ROS_HOME / "log")

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the temporary ROS_HOME (logs) of this run."""
    shutil.rmtree(_ROS_HOME, ignore_errors=True)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(0.01)


class RosHarness:
    """One rclpy context; nodes made with :meth:`node` spin in a background thread until :meth:`close`."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes: list[Any] = []
        self._thread = threading.Thread(target=self._spin, name="ros-test-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):  # context shut down while spinning: the normal end
            self.executor.spin()

    def node(self, name: str, **kwargs: Any) -> Any:
        """A node in this context, spun by the background executor (kwargs go to ``rclpy.node.Node``)."""
        from rclpy.node import Node

        node = Node(name, context=self.context, **kwargs)
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def add_node(self, node: Any) -> Any:
        """Spin a node made elsewhere (it must use ``self.context``); destroyed at :meth:`close`."""
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        """See module-level :func:`wait_for`."""
        return wait_for(predicate, timeout, what)

    @staticmethod
    def wait_for_subscribers(publisher: Any, count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``publisher`` has matched ``count`` subscriptions: messages sent before that are lost."""
        wait_for(
            lambda: publisher.get_subscription_count() >= count,
            timeout,
            f"{count} subscriber(s) on {publisher.topic_name}",
        )

    @staticmethod
    def wait_for_publishers(subscription: Any, count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``subscription`` has matched ``count`` publishers."""
        wait_for(
            lambda: subscription.get_publisher_count() >= count,
            timeout,
            f"{count} publisher(s) on {subscription.topic_name}",
        )

    def close(self) -> None:
        """Stop the executor thread, destroy the nodes and shut the context down."""
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        for node in self._nodes:
            node.destroy_node()
        self._nodes.clear()
        self.context.try_shutdown()


@pytest.fixture
def ros() -> Iterator[RosHarness]:
    """A fresh rclpy context per test, with a spinning executor."""
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def ros_module() -> Iterator[RosHarness]:
    """One rclpy context shared by a test module (saves node start-up time across its tests)."""
    harness = RosHarness()
    yield harness
    harness.close()

"""The console entry point every node of the package shares: start, spin, and end cleanly.

Ctrl-C and SIGTERM end a node with exit status 0, also while it is still starting; a configuration error ends it
with one line naming what is wrong and no traceback.
"""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def run_node(program: str, make_node: Callable[[], Node], args: list[str] | None = None, *,
             done: Callable[[Node], bool] | None = None,
             config_errors: tuple[type[BaseException], ...] = (ValueError,)) -> None:
    """Spin the node `make_node()` builds until shutdown, or until `done(node)` says its work is finished."""
    rclpy.init(args=args)
    # The executor exists before the (possibly slow) node start-up: a signal then only shuts the context down and
    # spinning returns, instead of failing to create an executor on a context that is already gone.
    executor = SingleThreadedExecutor()
    node = None
    try:
        node = make_node()
        executor.add_node(node)
        if done is None:
            executor.spin()
        else:
            while rclpy.ok() and not done(node):
                executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except config_errors as exc:  # a bad parameter or an unreadable file: say which, without a traceback
        raise SystemExit(f"{program}: {exc}") from None
    except Exception:
        if rclpy.ok():
            raise
        # a signal shut ROS down while the node was being built: a normal, clean exit
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()

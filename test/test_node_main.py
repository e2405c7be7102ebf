"""The node's stop signals: a Ctrl-C that lands where an exception would be lost is delivered again later."""

from __future__ import annotations

import importlib
import sys

from hetskel_ros.ros.node_main import _raising_here_is_lost


def test_a_stop_signal_in_a_finalizer_or_an_import_is_not_raised_there(tmp_path, monkeypatch):
    """A KeyboardInterrupt raised in a __del__ is printed as "Exception ignored in" and dropped (seen in a Ctrl-C
    storm during start-up: the node then missed its stop), and one raised in an import is printed by the native code
    that imports; in plain code it is raised at once."""
    seen: dict[str, bool] = {}

    class Finalized:
        def __del__(self) -> None:
            seen["finalizer"] = _raising_here_is_lost(sys._getframe())

    Finalized()  # collected at once
    (tmp_path / "probe_import.py").write_text(
        "import sys\nfrom hetskel_ros.ros.node_main import _raising_here_is_lost\n"
        "LOST = _raising_here_is_lost(sys._getframe())\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert seen["finalizer"] is True
    assert importlib.import_module("probe_import").LOST is True
    assert _raising_here_is_lost(sys._getframe()) is False

"""The one error type of the topology layer, so callers can catch bad configuration and bad input alike."""

from __future__ import annotations


class TopologyError(ValueError):
    """A topology, unified-skeleton, robot or sequence file (or an input array) is wrong.

    The message always names the culprit: the file, the key, the joint or the array shape, because the person
    who has to fix it is usually writing YAML for a new sensor, not reading this code.
    """

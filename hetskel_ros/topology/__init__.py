"""Unified skeleton, per-topology joint maps and normalisation (numpy only, no ROS, no torch)."""

"""Torch modules of the heterogeneous-skeleton model (no ROS)."""

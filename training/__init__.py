"""Offline self-supervised pretraining and evaluation (uses topology and model, never ROS)."""

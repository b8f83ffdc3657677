"""Hyper-parameter sweeps: search-space translation (Ray-free) and Ray Tune over the Ray Train trainer."""

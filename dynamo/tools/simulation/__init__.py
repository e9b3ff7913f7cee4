"""Deterministic whole-cluster simulation: the node's real code on virtual time,
a simulated network and in-memory stores, driven by a seeded fault schedule."""

"""Chaos runs: faults injected into a real local cluster during a workload, then a checker."""

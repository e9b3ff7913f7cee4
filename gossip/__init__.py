"""Scuttlebutt gossip (membership, failure detection) and replica-log anti-entropy."""

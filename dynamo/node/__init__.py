"""One node: its assembly (the composition root), its view of the cluster, ownership
(anti-entropy, hints, leave wiring), maintenance, config, clock, metrics and stats."""

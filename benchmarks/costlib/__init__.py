"""What the cost benchmarks share (``aae_cost.py``, ``tictac_cost.py``): readings of a
node process from ``/proc`` and of its anti-entropy from ``/admin/aae``, a scratch
cluster's life, waits, and the helpers that print the figures. The modules named
``tictac_*`` hold the pieces of ``tictac_cost.py`` that only it uses."""

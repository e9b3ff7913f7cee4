"""A network lab on one machine: hosts as network namespaces on a bridge, faults by nftables.

For tests that need what a TCP proxy cannot give: several node processes on their
own IP addresses, and packets that vanish silently (a partition, asymmetric or
not, a flapping link) so connections hang until their timeouts. Needs root, ``ip``
(iproute2) and ``nft`` (nftables); ``environment_problems()`` says what is missing.

```python
with Lab(3) as lab:
    lab.spawn(0, [sys.executable, "-m", "some.server", lab.address(0)])
    lab.partition({0}, {1, 2})      # silent drops both ways
    lab.heal()
```

Modules: ``names``, ``subnet``, ``nftrules``, ``plan`` and ``flap``'s schedule are pure
(unit-tested without root); ``shell`` runs commands; ``lifecycle`` owns teardown
guarantees and ``cleanup_stale``; ``processes`` and ``faults`` are the lab's hosts and
network; ``lab`` puts them together.
"""

from dynamo.tools.lab.errors import LabCommandError, LabError, LabUnavailable, SubnetInUse
from dynamo.tools.lab.flap import Flap
from dynamo.tools.lab.lab import Lab
from dynamo.tools.lab.lifecycle import cleanup_stale
from dynamo.tools.lab.shell import environment_problems

__all__ = [
    "Flap",
    "Lab",
    "LabCommandError",
    "LabError",
    "LabUnavailable",
    "SubnetInUse",
    "cleanup_stale",
    "environment_problems",
]

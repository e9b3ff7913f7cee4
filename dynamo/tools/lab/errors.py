"""What can go wrong in a lab, and whose move it is to fix it.

```
LabError                  every failure of the lab itself
 +-- LabUnavailable       this machine cannot run a lab (not root, `ip` or `nft` missing)
 +-- SubnetInUse          the subnet overlaps an address or route of the machine
 +-- LabCommandError      a command the lab ran failed or timed out (argv, exit code, stderr)
```

Wrong arguments (a host index out of range, overlapping partition sides) are the
caller's mistake and raise ``ValueError`` instead. Every message says what to change.
"""

from __future__ import annotations

from collections.abc import Sequence


class LabError(Exception):
    """A lab could not be built, changed or torn down."""


class LabUnavailable(LabError):
    """The machine cannot run a lab: the message lists what is missing and how to get it."""


class SubnetInUse(LabError):
    """The lab's subnet would overlap an address or a route already on the machine."""


class LabCommandError(LabError):
    """A command failed (non-zero exit) or did not finish within its timeout."""

    def __init__(self, argv: Sequence[str], detail: str) -> None:
        self.argv = tuple(argv)
        self.detail = detail
        super().__init__(f"`{' '.join(argv)}` {detail}")

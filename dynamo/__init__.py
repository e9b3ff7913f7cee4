"""The node: versions (DVVSet), storage, RPC, quorum coordinator, assembly, CLI."""

"""Riak-compatible HTTP API (aiohttp server) and the Python client."""

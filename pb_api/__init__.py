"""Riak's Protocol Buffers API: the protocol every Riak client speaks by default.

``codec`` (framing) and ``messages`` (codes, bodies) are pure; ``convert`` maps
messages to ``http_api``'s service types; ``handlers`` answers each request over the
same service Protocol HTTP serves; ``server`` is the asyncio shell; ``client`` is our
Python client's PB transport. Never imports ``dynamo``.
"""

"""TLS contexts for the HTTP API and for node-to-node connections.

Node-to-node TLS is mutual and pinned to the cluster's CA: each side presents
its certificate and must see one signed by that CA. Host names are not
checked (nodes are addressed by IP as often as by name); the CA is the trust
anchor, and the cluster secret's HMAC still proves membership on top.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def http_server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def peer_contexts(cert: Path, key: Path, ca: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server side, client side) contexts for the peer port."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(cert, key)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    client.minimum_version = ssl.TLSVersion.TLSv1_2
    client.load_cert_chain(cert, key)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_REQUIRED
    return server, client

"""Node-to-node messaging: msgpack RPC over TCP and its TLS."""

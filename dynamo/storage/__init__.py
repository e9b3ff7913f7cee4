"""The store contract and its two implementations: RocksDB and memory."""

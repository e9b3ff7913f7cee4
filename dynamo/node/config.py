"""Node configuration: one validated, frozen dataclass, with named presets.

Precedence: defaults < preset < config file (TOML) < ``DYNAMO_*`` environment <
command-line flags. Every field says what it trades off. A bad value fails at
start with a message naming the field.

Presets (``preset``, as memberlist's LAN/WAN/local configs) set the timing fields
together, for the network a cluster runs on:

- ``lan`` (the default): one data centre. Gossip every second, a peer counted down
  at phi 8 (about 5-6 s of silence), node-to-node calls time out at 5 s.
- ``wan``: nodes across regions. Slower gossip and a higher phi threshold trade
  slower failure detection for fewer false suspicions on a jittery, lossy network;
  longer call and request timeouts for its round trips.
- ``local``: every node on one machine (``dynamo up``). Faster gossip, anti-entropy
  and handoff: a laptop cluster converges in a second or two, at more chatter.
- ``test``: the simulation's and the tests' clock: short timeouts, intervals and a
  short tombstone grace, so that a run sees reaping and handoff within seconds.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    preset: str = "lan"  # timing for the network: lan, wan, local or test (see the module doc)
    node_id: str  # stable name of this node; its data directory is bound to it
    data_dir: Path  # RocksDB lives here; wiping it makes the node a new incarnation
    host: str = "127.0.0.1"  # address peers and clients reach this node at (bind and advertise)
    http_host: str = ""  # where the HTTP API binds; empty = host. 0.0.0.0 exposes it to all
    http_port: int = 8098
    peer_port: int = 8099
    # Riak's Protocol Buffers API (what Riak's clients speak by default), bound where HTTP
    # is; 0 turns it off. TLS and auth are HTTP's (RpbStartTls, RpbAuthReq).
    pb_port: int = 8087
    pb_max_connections: int = 4096  # more PB connections are closed at once, counted
    pb_stall_timeout_s: float = 10.0  # a PB client silent mid-frame this long is dropped
    # Several node processes on one host (dynamo start --processes) share the host's client
    # addresses with SO_REUSEPORT: the kernel spreads connections over them. Each keeps its
    # own http_port (its admin address, what /admin/members lists).
    shared_http_port: int = 0  # 0: none
    pb_reuse_port: bool = False
    seeds: tuple[str, ...] = ()  # host:peer_port of nodes to join through
    rejoin: bool = False  # start a node that left the cluster and join again
    # A member that left is forgotten this long after (its state would grow every
    # gossip digest forever); longer keeps it on /admin/members for operators to see.
    left_purge_s: float = 3600.0
    # A node with an empty data directory and no seeds cannot tell a new cluster from a
    # wiped member of an existing one: without this it waits to be contacted (or joined
    # with POST /admin/join) instead of serving as a cluster of one; with it, it founds
    # a new cluster. Only the first start of a data directory reads it.
    new_cluster: bool = False
    peer_routes: tuple[str, ...] = ()  # "addr=via": dial peer addr through via (a fault proxy)
    cluster_name: str = "dynamo"  # peers from another cluster are refused
    cluster_secret_file: Path | None = None  # HMAC secret every peer must prove
    # Where POST /admin/backup puts checkpoints (dynamo backup), one directory per name;
    # unset: backups are refused. On the node's own filesystem, they cost hard links.
    backup_root: Path | None = None
    cluster_secret: str = field(default="", repr=False)  # the secret itself (env var form)
    http_auth_token: str = field(default="", repr=False)  # clients send "Bearer <token>"
    http_auth_basic: str = field(default="", repr=False)  # "user:password" for basic auth
    http_tls_cert_file: Path | None = None  # serve HTTPS with this certificate chain...
    http_tls_key_file: Path | None = None  # ...and this private key
    peer_tls_cert_file: Path | None = None  # node-to-node TLS: this node's certificate...
    peer_tls_key_file: Path | None = None  # ...its key...
    peer_tls_ca_file: Path | None = None  # ...and the CA every peer's certificate must chain to
    tokens_per_node: int = 64  # virtual nodes: more is better balance, slower ring builds
    weight: float = 1.0  # share of the ring relative to other nodes
    # This node's failure domain (a zone, a rack, a host): a key's replicas go to distinct
    # locations when the cluster has enough of them. Empty: this machine's host name, so
    # several processes of one host never hold the same key's replicas.
    location: str = ""
    n_val: int = 3  # default replicas per key for buckets that do not set it
    max_object_bytes: int = 16 * MIB  # larger values get 413; bounds memory per request
    # A write that would make the stored object (every sibling) larger gets 413. It keeps
    # every object inside one node-to-node message, so replication, anti-entropy, hints
    # and transfers can always carry it; at most rpc_max_frame_bytes - 1 MiB.
    max_stored_object_bytes: int = 48 * MIB
    rpc_max_frame_bytes: int = 64 * MIB  # largest node-to-node message; bigger closes the link
    # The highest node-to-node protocol version offered: each connection speaks the highest
    # both ends offer, so a cluster upgrades one node at a time. 1 speaks exactly as the
    # first release (as Cassandra's native_transport_max_negotiable_protocol_version).
    rpc_max_protocol_version: int = 2
    request_timeout_ms: int = 10_000  # default per-request timeout; replies later are failures
    rpc_timeout_ms: int = 5_000  # one node-to-node call; lower notices dead peers sooner
    gossip_interval_s: float = 1.0  # one gossip round this often; faster is chattier
    phi_threshold: float = 8.0  # suspicion level at which a peer counts as down; lower is jumpier
    hinted_handoff: bool = True  # off: writes for down primaries are not taken by fallbacks
    handoff_interval_s: float = 1.0  # how often hints are offered to their targets
    handoff_batch: int = 200  # hints per delivery batch; larger is faster, burstier
    handoff_batch_bytes: int = 4 * MIB  # ...and at most this many bytes (one hint at least)
    # Hints older than this are dropped (and counted), never delivered: they must expire
    # before the reaped markers that guard against them, or a stand-in back from a long
    # outage could bring back a key deleted and reaped meanwhile. Longer keeps writes for
    # longer outages; then a target that comes back later is refilled by anti-entropy.
    hint_ttl_s: float = 3 * 86400.0
    handoff_rate_per_s: int = 5_000  # cap on hints delivered per second per node
    aae_interval_s: float = 1.0  # anti-entropy round pace while there is a backlog
    aae_quiet_interval_s: float = 5.0  # pace when a round found nothing new: quiet cost
    aae_round_bytes: int = 4 * MIB  # objects per anti-entropy round, in bytes
    tombstone_grace_s: float = 3600.0  # tombstones live this long once every primary has them
    reaped_marker_ttl_s: float = 7 * 86400.0  # a reaped key ignores older copies this long
    maintenance_interval_s: float = 5.0  # pace of reaping and cleanup checks
    # The tictac backstop (node.tictac): compares everything two replicas hold, finding
    # what no log shows (rot, objects lost behind the store's back). One small exchange
    # per interval when nothing differs; the rebuild reads every object at a bounded rate.
    tictac_exchange_interval_s: float = 60.0
    tictac_rebuild_interval_s: float = 7 * 86400.0
    tictac_rebuild_keys_per_s: float = 2_000.0  # a rebuild's pace: 1M keys in ~8 min
    tictac_build_keys_per_s: float = 50_000.0  # the first build after a start
    max_concurrent_requests: int = 1024  # beyond it, 503 with Retry-After rather than a queue
    max_siblings: int = 100  # writes that would exceed it are refused with 409-ish 503
    sibling_warning: int = 25  # log a warning when a key reaches this many siblings
    crdt_max_elements: int = 100_000  # a data type's set elements, map fields, pending removes
    crdt_max_depth: int = 8  # maps nested in maps, at most this deep
    max_index_results: int = 100_000  # an unpaged index query's results; more is a 413
    block_cache_bytes: int = 32 * MIB  # RocksDB read cache
    write_buffer_bytes: int = 8 * MIB  # RocksDB memtable size
    # Free memory handed back to the kernel this often (glibc's malloc_trim; 0: never).
    # Without it a node's RSS creeps up as memtables fill and flush (node.memory).
    malloc_trim_interval_s: float = 60.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"config {name}: {why}")

        if self.preset not in PRESETS:
            raise bad("preset", f"{self.preset!r} is not one of {', '.join(PRESETS)}")
        if not self.node_id or "/" in self.node_id or len(self.node_id.encode()) > 200:
            raise bad("node_id", "use a non-empty name of at most 200 bytes, without '/'")
        for name in ("http_port", "peer_port", "pb_port", "shared_http_port"):
            v = getattr(self, name)
            if not 0 <= v <= 65535:
                raise bad(name, f"{v} is not a TCP port (0-65535)")
        for s in self.seeds:
            host, sep, port = s.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise bad("seeds", f"{s!r} is not host:peer_port")
        for r in self.peer_routes:
            addr, sep, via = r.partition("=")
            if not sep or ":" not in addr or ":" not in via:
                raise bad("peer_routes", f"{r!r} is not host:port=host:port")
        if self.tokens_per_node < 1 or self.tokens_per_node > 4096:
            raise bad("tokens_per_node", "use 1 to 4096")
        if len(self.location.encode()) > 255 or any(c.isspace() for c in self.location):
            raise bad("location", "use a label of at most 255 bytes without spaces")
        if not self.weight > 0:
            raise bad("weight", "must be above 0")
        if not 1 <= self.n_val <= 64:
            raise bad("n_val", "use 1 to 64")
        for name in (
            "max_object_bytes",
            "request_timeout_ms",
            "rpc_timeout_ms",
            "handoff_batch",
            "handoff_batch_bytes",
            "handoff_rate_per_s",
            "max_stored_object_bytes",
            "aae_round_bytes",
            "max_concurrent_requests",
            "pb_max_connections",
            "max_siblings",
            "crdt_max_elements",
            "crdt_max_depth",
            "max_index_results",
            "block_cache_bytes",
            "write_buffer_bytes",
        ):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        for name in (
            "gossip_interval_s",
            "handoff_interval_s",
            "aae_interval_s",
            "aae_quiet_interval_s",
            "pb_stall_timeout_s",
            "tictac_exchange_interval_s",
            "tictac_rebuild_interval_s",
        ):
            if not getattr(self, name) > 0:
                raise bad(name, "must be above 0 seconds")
        for name in ("tictac_rebuild_keys_per_s", "tictac_build_keys_per_s"):
            if not getattr(self, name) >= 10:
                raise bad(name, "must be at least 10 keys a second")
        if self.left_purge_s < 0:
            raise bad("left_purge_s", "must be 0 or more seconds")
        if self.malloc_trim_interval_s < 0:
            raise bad("malloc_trim_interval_s", "must be 0 (never) or more seconds")
        if self.maintenance_interval_s <= 0:
            raise bad("maintenance_interval_s", "must be above 0 seconds")
        if self.reaped_marker_ttl_s < self.tombstone_grace_s:
            raise bad("reaped_marker_ttl_s", "must be at least tombstone_grace_s")
        if self.tombstone_grace_s < 0:
            raise bad("tombstone_grace_s", "must be 0 or more seconds")
        if not 0 < self.hint_ttl_s <= self.reaped_marker_ttl_s - self.tombstone_grace_s:
            raise bad(
                "hint_ttl_s",
                "hints must expire before the reaped markers that guard against them:"
                " use a value above 0 and at most reaped_marker_ttl_s - tombstone_grace_s"
                f" ({self.reaped_marker_ttl_s - self.tombstone_grace_s:g} s), or raise"
                " reaped_marker_ttl_s",
            )
        if self.rpc_max_protocol_version not in (1, 2):
            raise bad("rpc_max_protocol_version", "use 1 (the first release's) or 2")
        if self.rpc_max_frame_bytes < 4 * MIB:
            raise bad("rpc_max_frame_bytes", "use at least 4 MiB (4194304)")
        if self.crdt_max_depth > 32:
            raise bad("crdt_max_depth", "use 1 to 32 (maps nested deeper are refused on decode)")
        if self.max_stored_object_bytes > self.rpc_max_frame_bytes - MIB:
            raise bad(
                "max_stored_object_bytes",
                "a stored object must fit in one node-to-node message: use at most"
                f" rpc_max_frame_bytes - 1 MiB ({self.rpc_max_frame_bytes - MIB})",
            )
        if self.max_stored_object_bytes < self.max_object_bytes:
            raise bad("max_stored_object_bytes", "must be at least max_object_bytes")
        if self.phi_threshold <= 0:
            raise bad("phi_threshold", "must be above 0")
        if self.http_auth_basic and ":" not in self.http_auth_basic:
            raise bad("http_auth_basic", "use user:password")
        for group in (
            ("http_tls_cert_file", "http_tls_key_file"),
            ("peer_tls_cert_file", "peer_tls_key_file", "peer_tls_ca_file"),
        ):
            given = [name for name in group if getattr(self, name) is not None]
            if given and len(given) != len(group):
                raise bad(group[0], f"TLS needs all of {', '.join(group)}")
            for name in given:
                if not getattr(self, name).is_file():
                    raise bad(name, f"{getattr(self, name)} is not a readable file")
        if self.cluster_secret_file is not None and not self.cluster_secret_file.is_file():
            raise bad("cluster_secret_file", f"{self.cluster_secret_file} is not a readable file")

    @property
    def http_bind(self) -> str:
        return self.http_host or self.host

    @property
    def peer_addr(self) -> str:
        return f"{self.host}:{self.peer_port}"

    @property
    def http_addr(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def effective_location(self) -> str:
        return self.location or socket.gethostname() or self.node_id

    @property
    def pb_addr(self) -> str:
        """Where clients reach the PB API; empty when it is off."""
        return f"{self.host}:{self.pb_port}" if self.pb_port else ""

    def routes(self) -> dict[str, str]:
        return dict(r.partition("=")[::2] for r in self.peer_routes)

    def secret(self) -> bytes | None:
        if self.cluster_secret:
            return self.cluster_secret.encode()
        if self.cluster_secret_file is not None:
            data = self.cluster_secret_file.read_bytes().strip()
            if not data:
                raise ConfigError(
                    f"config cluster_secret_file: {self.cluster_secret_file} is empty"
                )
            return data
        return None


PRESETS: dict[str, dict[str, Any]] = {
    "lan": {},
    "wan": {
        "gossip_interval_s": 2.0,
        "phi_threshold": 12.0,
        "rpc_timeout_ms": 10_000,
        "request_timeout_ms": 20_000,
        "aae_quiet_interval_s": 10.0,
    },
    "local": {
        "tictac_exchange_interval_s": 10.0,
        "gossip_interval_s": 0.5,
        "aae_quiet_interval_s": 1.0,
        "handoff_interval_s": 0.5,
        "maintenance_interval_s": 1.0,
    },
    "test": {
        "tictac_exchange_interval_s": 1.0,
        "request_timeout_ms": 2000,
        "rpc_timeout_ms": 1000,
        "aae_quiet_interval_s": 1.0,
        "handoff_interval_s": 0.5,
        "tombstone_grace_s": 5.0,
        "maintenance_interval_s": 1.0,
    },
}

_FIELDS = {f.name: f for f in dataclasses.fields(NodeConfig)}


def _coerce(name: str, value: Any) -> Any:
    """A value from a file, the environment or a flag, as the field's type."""
    kind = str(_FIELDS[name].type)
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "Path":
            return Path(value)
        if kind == "Path | None":
            return Path(value) if value else None
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(s.strip() for s in value.split(",") if s.strip())
            return tuple(str(s) for s in value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config {name}: {value!r} is not a valid {kind}")


def load(
    flags: Mapping[str, Any], env: Mapping[str, str] | None = None, file: Path | None = None
) -> NodeConfig:
    """Defaults < file < ``DYNAMO_<FIELD>`` environment < flags (``None`` flags are unset)."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"config file {file}: {e}")
        for k, v in data.items():
            if k not in _FIELDS:
                raise ConfigError(f"config file {file}: unknown setting {k!r}")
            values[k] = _coerce(k, v)
    environ = os.environ if env is None else env
    for name in _FIELDS:
        v = environ.get(f"DYNAMO_{name.upper()}")
        if v is not None:
            values[name] = _coerce(name, v)
    for k, v in flags.items():
        if v is not None:
            values[k] = _coerce(k, v)
    for required in ("node_id", "data_dir"):
        if required not in values:
            raise ConfigError(f"config {required}: required (flag --{required.replace('_', '-')})")
    return with_preset(values)


def with_preset(values: Mapping[str, Any]) -> NodeConfig:
    """A config from ``values`` over the timing of their ``preset`` (default ``lan``)."""
    preset = values.get("preset", "lan")
    if preset not in PRESETS:
        raise ConfigError(f"config preset: {preset!r} is not one of {', '.join(PRESETS)}")
    return NodeConfig(**{**PRESETS[preset], **values})

"""Config presets: what each sets, and where they stand in the precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamo.node.config import PRESETS, ConfigError, NodeConfig, load

BASE = {"node_id": "n1", "data_dir": "/tmp/n1"}


def test_lan_is_the_default_and_sets_nothing_over_the_defaults() -> None:
    cfg = load(BASE, env={})
    assert cfg.preset == "lan"
    assert cfg == NodeConfig(node_id="n1", data_dir=Path("/tmp/n1"))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_sets_its_timing_and_validates(name: str) -> None:
    cfg = load({**BASE, "preset": name}, env={})
    for field, value in PRESETS[name].items():
        assert getattr(cfg, field) == value


def test_a_flag_or_the_environment_beats_the_preset() -> None:
    cfg = load({**BASE, "preset": "wan", "gossip_interval_s": "0.25"}, env={})
    assert cfg.gossip_interval_s == 0.25
    assert cfg.phi_threshold == PRESETS["wan"]["phi_threshold"]
    cfg = load(BASE, env={"DYNAMO_PRESET": "test", "DYNAMO_RPC_TIMEOUT_MS": "1500"})
    assert (cfg.preset, cfg.rpc_timeout_ms) == ("test", 1500)
    assert cfg.tombstone_grace_s == PRESETS["test"]["tombstone_grace_s"]


def test_an_unknown_preset_names_the_ones_there_are() -> None:
    with pytest.raises(ConfigError, match="preset: 'fast' is not one of lan, wan, local, test"):
        load({**BASE, "preset": "fast"}, env={})

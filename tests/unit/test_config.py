"""Target configuration: file ← environment precedence, and clear errors for bad files."""

from __future__ import annotations

import pytest

from ppdoctor.config import TargetConfig, load_config, split_host_port, write_config
from ppdoctor.errors import ConfigError


def test_round_trip_and_environment_fills_gaps(tmp_path):
    path = tmp_path / "c.toml"
    cfg = TargetConfig(name="x")
    write_config(cfg, path)
    loaded = load_config(path, env={"AWS_REGION": "eu-west-1", "KUBECONFIG": "/k1:/k2", "AWS_PROFILE": "ops"})
    assert loaded.name == "x"
    assert loaded.aws.region == "eu-west-1"
    assert loaded.aws.profile == "ops"
    assert loaded.kubernetes.kubeconfig == "/k1"


def test_file_values_win_over_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[aws]\nregion = "us-west-2"\n')
    assert load_config(path, env={"AWS_REGION": "eu-west-1"}).aws.region == "us-west-2"


@pytest.mark.parametrize("text, match", [
    ('[aws]\nregoin = "x"\n', "unknown key 'aws.regoin'"),
    ('[timeouts]\nconnect = -1\n', "positive number"),
    ('[nlb]\nlistener_port = "80"\n', "must be an integer"),
    ("[aws\n", "not valid TOML"),
    ("colour = 1\n", "unknown or invalid key 'colour'"),
])
def test_bad_files_are_rejected(tmp_path, text, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path, env={})


def test_missing_file_says_where_to_get_one(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.toml", env={})
    assert "lab up --json" in (err.value.hint or "")


@pytest.mark.parametrize("value, expected", [("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:8080", ("::1", 8080)),
                                             ("nlb.example.com:443", ("nlb.example.com", 443))])
def test_split_host_port(value, expected):
    assert split_host_port(value, what="x") == expected


@pytest.mark.parametrize("value", ["127.0.0.1", ":80", "h:0", "h:70000", "h:http"])
def test_split_host_port_rejects(value):
    with pytest.raises(ConfigError):
        split_host_port(value, what="x")

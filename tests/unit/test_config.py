"""A bad configuration fails at load time with the key that is wrong."""

import pytest

from arc_bridge.config import load_config, parse_config
from arc_bridge.errors import ConfigError

from .conftest import EXAMPLES


def test_the_example_configuration_is_complete_and_valid():
    config = load_config(EXAMPLES / "bridge.yaml")
    assert config.vos["alpha"].namespace == "ark-alpha"
    assert config.queues["default"].vos == ("alpha", "beta")
    assert config.vo_of_user("bob").name == "beta"
    assert config.vo_of_user("mallory") is None
    assert str(config.image_check.docker_config) == "/etc/ark/registry-pull.json"


def test_without_image_check_images_are_not_read_at_submit(raw_config):
    del raw_config["image_check"]
    assert parse_config(raw_config).image_check is None


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["queues"]["default"].update(vos=["gamma"]), "queues.default.vos: unknown VO 'gamma'"),
        (lambda c: c["vos"]["alpha"].update(default_image="other:1"), "vos.alpha.default_image: 'other:1' is not listed"),
        (lambda c: c["vos"]["alpha"].update(images=["Bad Image"]), "vos.alpha.images"),
        (lambda c: c["vos"]["beta"].update(users=["alice"]), "vos.beta.users: 'alice' is already a user of VO 'alpha'"),
        (lambda c: c["limits"].update(max_count=-1), "limits.max_count: expected a whole number"),
        (lambda c: c["limits"].update(max_count="lots"), "limits.max_count"),
        (lambda c: c.pop("controldir"), "controldir: required key is missing"),
        (lambda c: c.update(session_roots=["relative/dir"]), "session_roots[0]"),
        (lambda c: c["vos"]["alpha"].update(registry="no prefix"), "vos.alpha.registry"),
        (lambda c: c["vos"]["alpha"]["runtime_environments"].update({"X": "nope:1"}), "vos.alpha.runtime_environments.X"),
        (lambda c: c["queues"]["default"].update(node_selector={"bad key!": "x"}), "queues.default.node_selector"),
        (lambda c: c["session_volume"].update(type="nfs"), "session_volume.type: expected one of"),
        (lambda c: c.update(vos={}), "vos: at least one entry"),
        (lambda c: c["vos"]["alpha"].update(max_priority=101), "vos.alpha.max_priority: expected a whole number"),
        (lambda c: c["vos"]["alpha"].update(mounts=["/cvmfs", "/etc/ssl"]),
         "vos.alpha.mounts[1]: '/etc/ssl' would expose /etc of the node to the VO's jobs"),
        (lambda c: c["vos"]["alpha"].update(mounts=["/var"]), "vos.alpha.mounts[0]: '/var' would expose /var/run"),
        (lambda c: c["vos"]["alpha"].update(mounts=["/var/spool/arc/sessiondir/x"]),
         "would expose /var/spool/arc/sessiondir of the node"),
        (lambda c: c["vos"]["alpha"].update(mounts=["/"]), "vos.alpha.mounts[0]: '/' is not a normalised absolute path"),
        (lambda c: c["vos"]["alpha"].update(mounts=["/cvmfs/../etc"]), "is not a normalised absolute path"),
        (lambda c: c["vos"]["alpha"].update(mounts="/cvmfs"), "vos.alpha.mounts: expected a list"),
        (lambda c: c["image_check"].pop("ca_file"), "image_check.ca_file: required key is missing"),
    ],
)
def test_bad_values_name_their_key(raw_config, change, message):
    change(raw_config)
    with pytest.raises(ConfigError) as e:
        parse_config(raw_config)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unreadable_or_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vos: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)

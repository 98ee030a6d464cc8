from arc_bridge.arcconf import blocks, option

ARC_CONF = """\
[common]
hostname = ce.example.org

[arex]
controldir = /var/spool/arc/jobstatus
# controldir = /commented/out
allowaccess = alpha
allowaccess = beta

[custom:kubernetes]
socket = "/run/arkd/arkd.sock"
empty =

[queue:default]
[queue:roomy]
comment = big jobs
"""


def test_blocks_come_in_file_order_with_their_options():
    found = blocks(ARC_CONF)
    assert list(found) == ["common", "arex", "custom:kubernetes", "queue:default", "queue:roomy"]
    assert found["queue:default"] == {}
    assert found["queue:roomy"] == {"comment": "big jobs"}


def test_an_option_is_its_first_value_unquoted_and_comments_are_not_options():
    assert option(ARC_CONF, "arex", "controldir") == "/var/spool/arc/jobstatus"
    assert option(ARC_CONF, "arex", "allowaccess") == "alpha"
    assert option(ARC_CONF, "custom:kubernetes", "socket") == "/run/arkd/arkd.sock"


def test_a_missing_block_key_or_value_is_none():
    assert option(ARC_CONF, "lrms", "lrms") is None
    assert option(ARC_CONF, "arex", "tmpdir") is None
    assert option(ARC_CONF, "custom:kubernetes", "empty") is None
    assert option("hostname = outside any block\n", "common", "hostname") is None

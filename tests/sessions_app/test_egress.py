"""The firewall rules of each egress (sessions_app/egress.py), walked with harden-host's own rules.

A new connection from an instance goes through harden-host's chains as
--print shows them, then through the rules egress_rules() computes for its
session network, as netfilter walks them (tests/support/netfilter.py). The
same rules on the real firewall: tests/integration/test_egress_on_docker.py.
"""

import pytest

from sessions_app import egress
from sessions_app.egress import EgressUnenforced, egress_apply, egress_restore, egress_rules, mirror_endpoint
from tests.support import netfilter
from tests.support.netfilter import Connection

RESTRICTED = "br-0123456789ab"
OPEN = "br-ba9876543210"  # another session's network, of an `internet` playground
RESOLVER = "10.255.255.53"
MIRROR = "203.0.113.5"


@pytest.fixture
def host_rules(tmp_path):
    return netfilter.printed(
        tmp_path,
        f"nameserver {RESOLVER}\nnameserver fd00::53\n",
        PLAYGROUND_EGRESS_ALLOW="10.0.0.7:5000",
        PLAYGROUND_HOST_ALLOW="5000/tcp",
    )


def walk(host_rules, value: str, connection: Connection, *, family: str = "4", chain: str = "DOCKER-USER"):
    """The verdict from Docker's DOCKER-USER (forwarded) or INPUT (to the host), with harden-host's jumps."""
    ours = egress_rules(interface=RESTRICTED, egress=value, mirror=[MIRROR], mirror_port=5000, family=int(family))
    return netfilter.verdict(host_rules["jumps"] + host_rules[family] + ours, chain, connection)


def forwarded(host_rules, connection: Connection, family: str = "4") -> str:
    """The verdict without any rules of egress."""
    return netfilter.verdict(host_rules["jumps"] + host_rules[family], "DOCKER-USER", connection)


def test_it_lets_replies_through_first():
    for value in ("mirror-only", "none"):
        rules = egress_rules(interface=RESTRICTED, egress=value, mirror=[MIRROR], mirror_port=5000, family=4)
        assert rules[1] == "-A PLAYGROUND-E-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"


def test_it_is_reached_from_docker_user_and_input_before_the_hosts_own_accepts(host_rules):
    assert host_rules["jumps"] == [
        "-A INPUT -i br-+ -j PLAYGROUND-EGRESS",
        "-A INPUT -i br-+ -j PLAYGROUND-INPUT",
        "-A DOCKER-USER -i br-+ -j PLAYGROUND-EGRESS",
        "-A DOCKER-USER -i br-+ -j PLAYGROUND-FORWARD",
        "-A FORWARD -j DOCKER-USER",
    ]
    # PLAYGROUND-FORWARD and PLAYGROUND-INPUT do not know of egress: an older
    # harden-host rewriting them leaves it in force.
    assert not [rule for rule in host_rules["4"] if "PLAYGROUND-EGRESS" in rule]


def test_it_adds_nothing_for_the_internet(host_rules):
    assert egress_rules(interface=RESTRICTED, egress="internet", mirror=[MIRROR], mirror_port=5000, family=4) == []
    assert walk(host_rules, "internet", Connection("1.1.1.1")) == "RETURN"
    assert walk(host_rules, "internet", Connection("10.1.2.3")) == "DROP"


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        (Connection(MIRROR, port=5000), "RETURN"),  # the mirror
        (Connection(MIRROR, port=22), "DROP"),  # another port of it
        (Connection(MIRROR, proto="udp", port=5000), "DROP"),
        (Connection("1.1.1.1"), "DROP"),  # the internet
        (Connection("1.1.1.1", proto="udp", port=443), "DROP"),
        (Connection(RESOLVER, proto="udp", port=53), "RETURN"),  # the host's DNS server, where Docker's DNS asks
        (Connection(RESOLVER, proto="tcp", port=53), "RETURN"),
        (Connection("8.8.8.8", proto="udp", port=53), "DROP"),  # any other DNS server: a tunnel out
        (Connection("8.8.8.8", proto="tcp", port=53), "DROP"),
        (Connection("10.0.0.7", port=5000), "DROP"),  # in PLAYGROUND_EGRESS_ALLOW, but not the mirror
        (Connection("1.1.1.1", interface=OPEN), "RETURN"),  # another network: unchanged
    ],
)
def test_it_lets_mirror_only_reach_the_mirror_and_dns_alone(host_rules, connection, expected):
    assert walk(host_rules, "mirror-only", connection) == expected


@pytest.mark.parametrize(
    "connection",
    [
        Connection(MIRROR, port=5000),
        Connection("1.1.1.1"),
        Connection(RESOLVER, proto="udp", port=53),
        Connection(RESOLVER, proto="tcp", port=53),
        Connection("10.0.0.7", port=5000),
    ],
)
def test_it_lets_nothing_leave_with_none(host_rules, connection):
    assert walk(host_rules, "none", connection) == "DROP"
    # Another session's network goes on as harden-host alone says.
    elsewhere = Connection(connection.address, connection.proto, connection.port, interface=OPEN)
    assert walk(host_rules, "none", elsewhere) == forwarded(host_rules, elsewhere)


def test_it_keeps_the_host_itself_closed_to_none_and_to_all_but_the_mirror_for_mirror_only(host_rules):
    # PLAYGROUND_HOST_ALLOW opens port 5000 of the host to instances of `internet` playgrounds.
    host = Connection("192.0.2.1", port=5000)
    assert netfilter.verdict(host_rules["jumps"] + host_rules["4"], "INPUT", host) == "ACCEPT"
    assert walk(host_rules, "none", host, chain="INPUT") == "DROP"
    assert walk(host_rules, "mirror-only", host, chain="INPUT") == "DROP"
    # A mirror on the host itself, on a port PLAYGROUND_HOST_ALLOW opens.
    mirror_on_the_host = Connection(MIRROR, port=5000)
    assert walk(host_rules, "mirror-only", mirror_on_the_host, chain="INPUT") == "ACCEPT"
    assert walk(host_rules, "none", mirror_on_the_host, chain="INPUT") == "DROP"


def test_it_applies_to_ipv6_too(host_rules):
    assert walk(host_rules, "none", Connection("2001:db8::1"), family="6") == "DROP"
    assert walk(host_rules, "mirror-only", Connection("2001:db8::1", port=5000), family="6") == "DROP"
    assert walk(host_rules, "mirror-only", Connection("fd00::53", proto="udp", port=53), family="6") == "RETURN"
    ours = egress_rules(interface=RESTRICTED, egress="mirror-only", mirror=[MIRROR], mirror_port=5000, family=6)
    assert not [rule for rule in ours if MIRROR in rule]


def test_it_matches_the_mirror_on_the_address_asked_for_before_nat():
    # A mirror published on a port of the host is DNATed to its container before FORWARD.
    [_, _, mirror, *_] = egress_rules(
        interface=RESTRICTED, egress="mirror-only", mirror=[MIRROR], mirror_port=5000, family=4
    )
    assert (
        mirror
        == f"-A PLAYGROUND-E-0123456789ab -p tcp -m conntrack --ctorigdst {MIRROR} --ctorigdstport 5000 -j RETURN"
    )


def test_it_lets_mirror_only_reach_dns_alone_without_a_mirror(host_rules):
    ours = egress_rules(interface=RESTRICTED, egress="mirror-only", mirror=[], mirror_port=None, family=4)
    rules = host_rules["jumps"] + host_rules["4"] + ours
    assert netfilter.verdict(rules, "DOCKER-USER", Connection(MIRROR, port=5000)) == "DROP"
    assert netfilter.verdict(rules, "DOCKER-USER", Connection(RESOLVER, proto="udp", port=53)) == "RETURN"


def test_it_replaces_the_networks_own_chain_without_touching_the_shared_one():
    rules = egress_rules(interface=RESTRICTED, egress="none", mirror=[], mirror_port=None, family=4)

    assert rules == [
        "-A PLAYGROUND-EGRESS -i br-0123456789ab -g PLAYGROUND-E-0123456789ab",
        "-A PLAYGROUND-E-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A PLAYGROUND-E-0123456789ab -j DROP",
    ]
    assert egress_restore(rules).splitlines() == ["*filter", ":PLAYGROUND-E-0123456789ab - [0:0]", *rules[1:], "COMMIT"]
    assert len("PLAYGROUND-E-0123456789ab") <= 28  # iptables' longest chain name


def test_it_refuses_an_egress_it_does_not_know():
    with pytest.raises(ValueError, match="intranet"):
        egress_rules(interface=RESTRICTED, egress="intranet", mirror=[], mirror_port=None, family=4)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.5:5000", ("10.0.0.5", 5000)),
        ("mirror.internal:5000", ("mirror.internal", 5000)),
        ("[fd00::5]:5000", ("fd00::5", 5000)),
        ("", None),
        ("10.0.0.5", None),
        ("10.0.0.5:http", None),
        ("10.0.0.5:70000", None),
    ],
)
def test_it_reads_the_mirrors_address(value, expected):
    assert mirror_endpoint(value) == expected


def test_it_refuses_to_start_a_restricted_instance_without_the_host_firewall(settings, monkeypatch):
    settings.PLAYGROUND_FIREWALL = "off"
    ran = []
    monkeypatch.setattr(egress, "run_in_host_netns", lambda command, **kwargs: ran.append(command) or (0, ""))

    egress_apply(interface=RESTRICTED, egress="internet")
    for value in ("mirror-only", "none"):
        with pytest.raises(EgressUnenforced) as caught:
            egress_apply(interface=RESTRICTED, egress=value)
        assert "PLAYGROUND_FIREWALL is off" in caught.value.log_message
    assert ran == []


def test_it_refuses_to_start_a_restricted_instance_when_iptables_fails(settings, monkeypatch):
    settings.PLAYGROUND_FIREWALL = "auto"
    monkeypatch.setattr(egress, "_binaries", lambda: {4: "iptables"})
    monkeypatch.setattr(egress, "run_in_host_netns", lambda command, **kwargs: (1, "iptables-restore: line 2 failed"))

    with pytest.raises(EgressUnenforced) as caught:
        egress_apply(interface=RESTRICTED, egress="none")

    assert "line 2 failed" in caught.value.log_message
    assert caught.value.reason == "egress_unenforced"

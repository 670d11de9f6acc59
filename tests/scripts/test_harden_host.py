"""What scripts/harden-host would install (--print), read like the kernel would.

No root and no firewall needed: the rules it prints are walked in order for
a new connection from an instance, as netfilter walks them. Installing and
checking them on the real firewall: tests/integration/test_firewall_on_docker.py.
"""

import ipaddress
import os
import re
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "harden-host"


def printed(tmp_path: Path, resolv_conf: str = "", **settings: str) -> dict[str, list[str]]:
    """The rules of each family ("4", "6") that harden-host --print shows for these settings."""
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "resolv.conf").write_text(resolv_conf)
    env = {"PATH": os.environ["PATH"], "PLAYGROUND_HOST_ROOT": str(tmp_path), **settings}
    done = subprocess.run([SCRIPT, "--print"], env=env, capture_output=True, text=True, check=True)
    families: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        if match := re.match(r"# IPv(\d)", line):
            family = families.setdefault(match[1], [])
        elif line.startswith("-A "):
            family.append(line)
    return families


def verdict(rules: list[str], chain: str, address: str, *, proto: str = "tcp", port: int = 443) -> str:
    """What `chain` does with a new connection from an instance to address:port,
    leaving the host on an ordinary interface (not another bridge)."""
    for rule in rules:
        words = rule.split()
        if words[1] != chain:
            continue
        options = dict(zip(words[2::2], words[3::2], strict=False))
        if "-o" in options or "--ctstate" in rule:  # another bridge; a reply
            continue
        if "-d" in options and ipaddress.ip_address(address) not in ipaddress.ip_network(options["-d"], strict=False):
            continue
        if "-p" in options and options["-p"] != proto:
            continue
        if "--dport" in options:
            low, _, high = options["--dport"].partition(":")
            if not int(low) <= port <= int(high or low):
                continue
        return options["-j"]
    return "RETURN"  # the end of the chain: Docker's own rules decide


def marker(rules: list[str]) -> str:
    [found] = [rule for rule in rules if "playground-firewall:" in rule]
    return found


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",  # an external PostgreSQL, Redis or Docker API on the private network
        "172.20.0.5",
        "192.168.1.10",
        "100.100.100.200",  # Alibaba Cloud's metadata
        "100.64.0.1",  # carrier-grade NAT, Tailscale
        "169.254.169.254",  # cloud metadata
        "0.0.0.1",
        "224.0.0.251",
        "255.255.255.255",
        "fd00::5",  # unique-local
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fe80::1",
        "::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",  # NAT64 towards 10.0.0.1
        "ff02::1",
    ],
)
def test_it_drops_what_is_not_the_internet(tmp_path, address):
    family = "6" if ":" in address else "4"

    assert verdict(printed(tmp_path)[family], "PLAYGROUND-FORWARD", address) == "DROP"


@pytest.mark.parametrize("address", ["1.1.1.1", "8.8.8.8", "151.101.0.223", "2a04:4e42::223", "2001:4860:4860::8888"])
def test_it_lets_the_internet_through(tmp_path, address):
    family = "6" if ":" in address else "4"

    assert verdict(printed(tmp_path)[family], "PLAYGROUND-FORWARD", address) == "RETURN"


def test_it_drops_every_new_connection_to_the_host_itself(tmp_path):
    for family, address in (("4", "192.0.2.2"), ("6", "fe80::42:eff:fe3b:e947")):
        input_rules = printed(tmp_path)[family]
        assert verdict(input_rules, "PLAYGROUND-INPUT", address, port=5432) == "DROP"


def test_it_keeps_port_53_of_the_hosts_dns_servers_open(tmp_path):
    # Docker 20.10's embedded DNS forwards from the instance's own namespace.
    resolv_conf = "search example.com\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver fd00::1\n"
    rules = printed(tmp_path, resolv_conf)

    for proto in ("udp", "tcp"):
        assert verdict(rules["4"], "PLAYGROUND-FORWARD", "10.255.255.53", proto=proto, port=53) == "RETURN"
        assert verdict(rules["6"], "PLAYGROUND-FORWARD", "fd00::1", proto=proto, port=53) == "RETURN"
    assert verdict(rules["4"], "PLAYGROUND-FORWARD", "10.255.255.53", port=80) == "DROP"
    assert not [rule for rule in rules["4"] if "127.0.0.53" in rule]


def test_it_reads_the_servers_behind_systemd_resolveds_stub(tmp_path):
    (tmp_path / "run" / "systemd" / "resolve").mkdir(parents=True)
    (tmp_path / "run" / "systemd" / "resolve" / "resolv.conf").write_text("nameserver 192.168.1.1\n")

    rules = printed(tmp_path, "nameserver 127.0.0.53\noptions edns0\n")

    assert verdict(rules["4"], "PLAYGROUND-FORWARD", "192.168.1.1", proto="udp", port=53) == "RETURN"


def test_it_opens_what_egress_allow_lists_and_nothing_more(tmp_path):
    allow = "10.0.0.5:5000 192.168.7.0/24,10.0.0.9:8000-8099/udp [fd00::5]:5000 fd00:1::/64"
    rules = printed(tmp_path, PLAYGROUND_EGRESS_ALLOW=allow)

    forward = [
        ("4", "10.0.0.5", "tcp", 5000, "RETURN"),
        ("4", "10.0.0.5", "tcp", 5001, "DROP"),
        ("4", "10.0.0.5", "udp", 5000, "DROP"),
        ("4", "192.168.7.200", "tcp", 22, "RETURN"),
        ("4", "192.168.8.1", "tcp", 22, "DROP"),
        ("4", "10.0.0.9", "udp", 8050, "RETURN"),
        ("4", "10.0.0.9", "tcp", 8050, "DROP"),
        ("6", "fd00::5", "tcp", 5000, "RETURN"),
        ("6", "fd00::5", "tcp", 22, "DROP"),
        ("6", "fd00:1::77", "udp", 123, "RETURN"),
    ]
    for family, address, proto, port, expected in forward:
        assert verdict(rules[family], "PLAYGROUND-FORWARD", address, proto=proto, port=port) == expected, address
    # The same entries open the host itself where they name one of its addresses.
    assert verdict(rules["4"], "PLAYGROUND-INPUT", "10.0.0.5", port=5000) == "ACCEPT"
    assert verdict(rules["4"], "PLAYGROUND-INPUT", "10.0.0.5", port=5432) == "DROP"


def test_it_opens_the_ports_host_allow_lists_on_the_host(tmp_path):
    rules = printed(tmp_path, PLAYGROUND_HOST_ALLOW="5000/tcp 53/udp")

    for family, address in (("4", "192.0.2.2"), ("6", "fd00::2")):
        assert verdict(rules[family], "PLAYGROUND-INPUT", address, port=5000) == "ACCEPT"
        assert verdict(rules[family], "PLAYGROUND-INPUT", address, proto="udp", port=53) == "ACCEPT"
        assert verdict(rules[family], "PLAYGROUND-INPUT", address, proto="tcp", port=53) == "DROP"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PLAYGROUND_EGRESS_ALLOW", "10.0.0.5/tcp"),
        ("PLAYGROUND_EGRESS_ALLOW", "[fd00::5]:5000/sctp"),
        ("PLAYGROUND_EGRESS_ALLOW", "registry.local:5000"),
        ("PLAYGROUND_HOST_ALLOW", "5000/sctp"),
        ("PLAYGROUND_REGISTRY_MIRROR", "172.17.0.1"),
        ("PLAYGROUND_REGISTRY_MIRROR", "10.0.0.0/8:5000"),
    ],
)
def test_it_refuses_an_entry_it_cannot_read(tmp_path, name, value):
    env = {"PATH": os.environ["PATH"], "PLAYGROUND_HOST_ROOT": str(tmp_path), name: value}

    for mode in ("--print", "--check"):
        done = subprocess.run([SCRIPT, mode], env=env, capture_output=True, text=True)
        assert done.returncode == 2
        assert f"{name}: cannot read '{value}'" in done.stderr


def test_it_opens_the_registry_mirror_to_instances_and_nothing_beside_it(tmp_path):
    rules = printed(tmp_path, PLAYGROUND_REGISTRY_MIRROR="172.17.0.1:5000")["4"]

    assert verdict(rules, "PLAYGROUND-INPUT", "172.17.0.1", port=5000) == "ACCEPT"
    assert verdict(rules, "PLAYGROUND-INPUT", "172.17.0.1", port=5001) == "DROP"
    assert verdict(rules, "PLAYGROUND-FORWARD", "172.17.0.1", port=5000) == "RETURN"
    assert verdict(rules, "PLAYGROUND-FORWARD", "172.17.0.2", port=5000) == "DROP"


def test_it_fingerprints_the_rule_set_and_counts_its_rules(tmp_path):
    plain = printed(tmp_path)
    opened = printed(tmp_path, PLAYGROUND_EGRESS_ALLOW="10.0.0.5:5000")

    assert marker(printed(tmp_path)["4"]) == marker(plain["4"])
    assert marker(opened["4"]) != marker(plain["4"])
    assert marker(opened["6"]) == marker(plain["6"])  # no IPv6 entry
    for rules in (plain["4"], plain["6"], opened["4"]):
        assert marker(rules).split()[-3].endswith(f":{len(rules)}")
        assert rules[-1] == marker(rules) and marker(rules).endswith("-j RETURN")

"""Rules in iptables-save form, walked for a new connection from an instance as netfilter walks them.

Enough of netfilter for the platform's own rules: -i (with its + wildcard),
-d, -p, --dport, conntrack's --ctorigdst and --ctorigdstport (without NAT
they are the destination), jumps (-j CHAIN: its RETURN goes on after the
jump) and gotos (-g CHAIN: its RETURN returns from the chain that went
there). A rule with -o (towards another bridge) or --ctstate (a reply) never
matches a new connection leaving the host. A chain with no rules here is
empty.
"""

import ipaddress
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "harden-host"

VERDICTS = {"ACCEPT", "DROP", "REJECT"}


@dataclass(frozen=True)
class Connection:
    address: str
    proto: str = "tcp"
    port: int = 443
    interface: str = "br-0123456789ab"


def verdict(rules: list[str], chain: str, connection: Connection) -> str:
    """ACCEPT or DROP, or RETURN when `chain` lets the connection go on (to Docker's own rules)."""
    chains: dict[str, list[dict[str, str]]] = {}
    for rule in rules:
        words = rule.split()
        assert words[0] == "-A", rule
        chains.setdefault(words[1], []).append(dict(zip(words[2::2], words[3::2], strict=False)))
    return _walk(chains, chain, connection, depth=0)


def _walk(chains: dict[str, list[dict[str, str]]], chain: str, connection: Connection, depth: int) -> str:
    assert depth < 10, f"a loop through {chain}"
    for options in chains.get(chain, []):
        if not _matches(options, connection):
            continue
        target = options.get("-j") or options["-g"]
        if target in VERDICTS or target == "RETURN":
            return target
        outcome = _walk(chains, target, connection, depth + 1)
        if outcome in VERDICTS or "-g" in options:
            return outcome
    return "RETURN"


def _matches(options: dict[str, str], connection: Connection) -> bool:
    if "-o" in options or "--ctstate" in options:
        return False
    if "-i" in options:
        wanted = options["-i"]
        if not (
            connection.interface.startswith(wanted[:-1]) if wanted.endswith("+") else connection.interface == wanted
        ):
            return False
    for key in ("-d", "--ctorigdst"):
        if key in options and ipaddress.ip_address(connection.address) not in ipaddress.ip_network(
            options[key], strict=False
        ):
            return False
    if "-p" in options and options["-p"] != connection.proto:
        return False
    for key in ("--dport", "--ctorigdstport"):
        if key in options:
            low, _, high = options[key].partition(":")
            if not int(low) <= connection.port <= int(high or low):
                return False
    return True


def printed(tmp_path: Path, resolv_conf: str = "", **settings: str) -> dict[str, list[str]]:
    """The rules of each family ("4", "6") that harden-host --print shows for these settings, and under
    "jumps" the jumps to them in the order they are installed (each goes first in its chain)."""
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "resolv.conf").write_text(resolv_conf)
    env = {"PATH": os.environ["PATH"], "PLAYGROUND_HOST_ROOT": str(tmp_path), **settings}
    done = subprocess.run([SCRIPT, "--print"], env=env, capture_output=True, text=True, check=True)
    families: dict[str, list[str]] = {}
    current = ""
    for line in done.stdout.splitlines():
        if match := re.match(r"# IPv(\d)", line):
            current = match[1]
            family = families.setdefault(current, [])
        elif line.startswith("-A "):
            family.append(line)
        elif line.startswith("#   -A ") and current == "4":  # the same for both families
            families.setdefault("jumps", []).insert(0, line.removeprefix("#   "))
    return families

"""Egress per playground: what may leave the instances of one session network.

scripts/harden-host fences every session network off the host and the
private networks around it; that is a playground's `internet` egress.
Docker's DOCKER-USER and INPUT also jump to PLAYGROUND-EGRESS (in INPUT
before PLAYGROUND-INPUT), which the script creates and never flushes, nor
does one of an older version, which rewrites only its own chains. For a
network of a `mirror-only` or `none` playground, this module adds one rule
there, `-i br-<id> -g PLAYGROUND-E-<id>`, and fills that network's own chain,
whose first rule lets replies through:

- mirror-only: TCP to PLAYGROUND_REGISTRY_MIRROR (matched on the address
  the instance asked for, before any DNAT of a published port) returns to
  harden-host's rules, which still apply (a mirror on a private address must
  also be in PLAYGROUND_EGRESS_ALLOW or PLAYGROUND_HOST_ALLOW); DNS goes to
  harden-host's PLAYGROUND-DNS, which returns for the host's DNS servers,
  where Docker's embedded DNS forwards the instance's queries, and drops the
  rest; everything else is dropped.
- none: everything is dropped, DNS included. The embedded DNS still answers
  for names on the instance's own network, nothing beyond it.

Only new connections leaving the instance are concerned: replies to
connections made to the instance (the platform's own, the ports proxy's)
pass. Rootless instances need nothing more: their inner
containers' traffic leaves through the instance's own address
(slirp4netns), so it crosses the same bridge.

A network's chain is filled in one iptables-restore transaction before its
instance starts, so an instance never runs without it, and again by every
start() (idempotent). It goes when the network is removed, and the
reconciler removes the chains of networks that no longer exist and puts
back those that went missing (after a reboot, or an operator's flush).
"""

import ipaddress
import logging
import socket
import threading

from django.conf import settings

from sessions_app.backends.base import BackendError
from sessions_app.firewall import harden_host, run_in_host_netns
from sessions_app.models import Playground

logger = logging.getLogger(__name__)

Egress = Playground.Egress

DISPATCH = "PLAYGROUND-EGRESS"
DNS = "PLAYGROUND-DNS"
CHAIN_PREFIX = "PLAYGROUND-E-"
BRIDGE_PREFIX = "br-"


class EgressUnenforced(BackendError):
    reason = "egress_unenforced"
    message = (
        "No instance of this playground can start right now: the firewall rules that limit what "
        "leaves its instances cannot be put in place. The operator has been told."
    )


def network_chain(interface: str) -> str:
    """The chain of a session network's bridge br-<id>: PLAYGROUND-E-<id> (iptables allows 28 characters)."""
    return CHAIN_PREFIX + interface.removeprefix(BRIDGE_PREFIX)


def mirror_endpoint(value: str) -> tuple[str, int] | None:
    """PLAYGROUND_REGISTRY_MIRROR's HOST and PORT ([IPv6]:PORT in brackets); None when empty or unreadable."""
    host, _, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def egress_rules(*, interface: str, egress: str, mirror: list[str], mirror_port: int | None, family: int) -> list[str]:
    """The rules (iptables-save form) for the network on `interface`, for one family (4 or 6).

    `mirror` holds the mirror's addresses (any family: those of another are
    left out). Empty for `internet`, which harden-host's rules already say.
    """
    if egress == Egress.INTERNET:
        return []
    if egress not in Egress.values:
        raise ValueError(f"unknown egress {egress!r}")
    chain = network_chain(interface)
    rules = [
        f"-A {DISPATCH} -i {interface} -g {chain}",
        f"-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
    ]
    if egress == Egress.MIRROR_ONLY:
        for address in mirror:
            if mirror_port and ipaddress.ip_address(address).version == family:
                rules.append(
                    f"-A {chain} -p tcp -m conntrack --ctorigdst {address} --ctorigdstport {mirror_port} -j RETURN"
                )
        rules += [f"-A {chain} -p udp --dport 53 -g {DNS}", f"-A {chain} -p tcp --dport 53 -g {DNS}"]
    rules.append(f"-A {chain} -j DROP")
    return rules


def egress_restore(rules: list[str]) -> str:
    """iptables-restore --noflush input that replaces the network's chain by `rules`, in one transaction.

    The dispatching rule (the first) is left out: PLAYGROUND-EGRESS is
    shared, and declaring it would flush the other networks' rules.
    """
    dispatch, *own = rules
    chain = dispatch.split()[-1]
    return "\n".join(["*filter", f":{chain} - [0:0]", *own, "COMMIT", ""])


# --- On the host ---------------------------------------------------------------


def egress_apply(*, interface: str, egress: str) -> None:
    """Put the rules of `egress` in place for the network on `interface`; safe to run again.

    Nothing to do for `internet`. Raises EgressUnenforced when they cannot
    be put in place (the firewall is off, or iptables fails): an instance of
    a restricted playground must not start without them.
    """
    if egress == Egress.INTERNET:
        return
    if settings.PLAYGROUND_FIREWALL == "off":
        raise EgressUnenforced(
            log_message=f"{interface}: egress {egress} needs the host firewall, and PLAYGROUND_FIREWALL is off"
        )
    mirror, port = _mirror_addresses()
    for family, binary in _binaries().items():
        rules = egress_rules(interface=interface, egress=egress, mirror=mirror, mirror_port=port, family=family)
        _iptables(f"{binary}-restore", "-w", "--noflush", input=egress_restore(rules))
        dispatch = rules[0].split()[1:]
        if _iptables(binary, "-w", "-C", *dispatch, check=False) != 0:
            _iptables(binary, "-w", "-A", *dispatch)


def egress_remove(*, interface: str) -> None:
    """Remove the rules of the network on `interface`, if it has any. Raises EgressUnenforced when iptables fails."""
    if settings.PLAYGROUND_FIREWALL == "off":
        return
    chain = network_chain(interface)
    for binary in _binaries().values():
        if _iptables(binary, "-w", "-n", "-L", chain, check=False) != 0:
            continue
        while _iptables(binary, "-w", "-D", DISPATCH, "-i", interface, "-g", chain, check=False) == 0:
            pass
        _iptables(binary, "-w", "-F", chain)
        _iptables(binary, "-w", "-X", chain)


def egress_interfaces() -> dict[str, bool]:
    """The bridges (br-<id>) that have a chain of their own in some family: whether, in every family,
    it exists and is in force (PLAYGROUND-EGRESS sends their traffic to it)."""
    if settings.PLAYGROUND_FIREWALL == "off":
        return {}
    present: set[str] = set()
    intact: list[set[str]] = []
    for binary in _binaries().values():
        code, output = run_in_host_netns([binary, "-w", "-S"])
        if code != 0:
            raise EgressUnenforced(log_message=f"{binary} -S failed: {output}")
        lines = set(output.splitlines())
        chains = {line.split()[1] for line in lines if line.startswith(f"-N {CHAIN_PREFIX}")}
        interfaces = {BRIDGE_PREFIX + chain.removeprefix(CHAIN_PREFIX) for chain in chains}
        present |= interfaces
        intact.append({i for i in interfaces if f"-A {DISPATCH} -i {i} -g {network_chain(i)}" in lines})
    return {interface: all(interface in found for found in intact) for interface in present}


def _mirror_addresses() -> tuple[list[str], int | None]:
    """The mirror's addresses (its name resolved here, as instances would through the host's DNS) and port."""
    endpoint = mirror_endpoint(settings.PLAYGROUND_REGISTRY_MIRROR)
    if endpoint is None:
        return [], None
    host, port = endpoint
    try:
        return [str(ipaddress.ip_address(host))], port
    except ValueError:
        pass
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except OSError as exc:
        # Fails closed: the instances reach DNS only.
        logger.warning(
            "The registry mirror %s does not resolve (%s): mirror-only instances will not reach it", host, exc
        )
        return [], None
    return sorted(address.split("%")[0] for address in found), port


_which_lock = threading.Lock()
_which: dict[tuple, dict[int, str]] = {}


def _binaries() -> dict[int, str]:
    """{4: iptables, 6: ip6tables where IPv6 works}: the variant that holds Docker's rules, as harden-host picks."""
    key = (settings.PLAYGROUND_FIREWALL_NETNS, settings.DOCKER_HOST)
    with _which_lock:
        if key not in _which:
            code, output = harden_host("--which")
            if code != 0 or not output.split():
                raise EgressUnenforced(log_message=f"harden-host --which failed: {output}")
            _which[key] = dict(zip((4, 6), output.split(), strict=False))
        return _which[key]


def _iptables(*command: str, input: str | None = None, check: bool = True) -> int:
    code, output = run_in_host_netns(list(command), input=input)
    if check and code != 0:
        raise EgressUnenforced(log_message=f"{' '.join(command[:4])} failed: {output}")
    return code

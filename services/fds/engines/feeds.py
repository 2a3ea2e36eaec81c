"""Threat-intelligence feeds shipped with the FDS (``services/fds/feeds/*.txt``).

Plain text, one entry a line, ``#`` starts a comment (whole line or after an entry):

- ``bad_ips.txt``: addresses and CIDR ranges, IPv4 or IPv6;
- ``disposable_domains.txt``: e-mail domains of throw-away mailboxes (sub-domains match too);
- ``risky_bins.txt``: card BINs (first 6-8 digits) with a record of fraud;
- ``bad_devices.txt``: device ids seen in fraud.

A malformed entry stops the service at start with the file and line number.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..schemas import Transaction

# Score of each feed hit; the CTI engine score is the highest of its hits.
FEED_SCORES = {"cti_bad_ip": 90.0, "cti_bad_device": 80.0, "cti_risky_bin": 50.0, "cti_disposable_email": 40.0}


class FeedError(ValueError):
    pass


class IpSet:
    """Addresses and networks, matched with one set lookup per distinct prefix length."""

    def __init__(self, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self._by_prefix: dict[tuple[int, int], set[int]] = {}
        for net in networks:
            shift = net.max_prefixlen - net.prefixlen
            self._by_prefix.setdefault((net.version, shift), set()).add(int(net.network_address) >> shift)

    def __contains__(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        value = int(ip)
        return any(version == ip.version and (value >> shift) in nets
                   for (version, shift), nets in self._by_prefix.items())

    def __len__(self) -> int:
        return sum(len(nets) for nets in self._by_prefix.values())


@dataclass(frozen=True)
class Feeds:
    bad_ips: IpSet
    disposable_domains: frozenset[str]
    risky_bins: frozenset[str]
    bad_devices: frozenset[str]

    def hits(self, txn: Transaction) -> list[str]:
        found = []
        if txn.ip_address in self.bad_ips:
            found.append("cti_bad_ip")
        if txn.device_id is not None and txn.device_id in self.bad_devices:
            found.append("cti_bad_device")
        if txn.card_bin is not None and txn.card_bin[:6] in self.risky_bins:
            found.append("cti_risky_bin")
        if _domain_listed(txn.email.rsplit("@", 1)[-1], self.disposable_domains):
            found.append("cti_disposable_email")
        return found

    def sizes(self) -> dict[str, int]:
        return {"bad_ips": len(self.bad_ips), "disposable_domains": len(self.disposable_domains),
                "risky_bins": len(self.risky_bins), "bad_devices": len(self.bad_devices)}


def _domain_listed(domain: str, listed: frozenset[str]) -> bool:
    parts = domain.split(".")
    return any(".".join(parts[i:]) in listed for i in range(len(parts) - 1))


def _entries(path: Path) -> list[tuple[int, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FeedError(f"CTI feed {path}: cannot read: {exc}") from exc
    out = []
    for number, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            out.append((number, entry))
    return out


def _networks(path: Path) -> IpSet:
    networks = []
    for number, entry in _entries(path):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise FeedError(f"CTI feed {path}:{number}: {entry!r} is not an IP address or CIDR range") from None
    return IpSet(networks)


def _words(path: Path, check: str | None = None) -> frozenset[str]:
    words = set()
    for number, entry in _entries(path):
        if check == "bin" and not (entry.isdigit() and 6 <= len(entry) <= 8):
            raise FeedError(f"CTI feed {path}:{number}: {entry!r} is not a 6-8 digit BIN")
        words.add(entry.lower() if check == "domain" else entry)
    return frozenset(words)


def load(directory: str | Path) -> Feeds:
    base = Path(directory)
    return Feeds(
        bad_ips=_networks(base / "bad_ips.txt"),
        disposable_domains=_words(base / "disposable_domains.txt", "domain"),
        risky_bins=frozenset(b[:6] for b in _words(base / "risky_bins.txt", "bin")),
        bad_devices=_words(base / "bad_devices.txt"),
    )

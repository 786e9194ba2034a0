"""Where a webhook may go: IP literals in every spelling, and which addresses are public.

Pure functions and one immutable policy; the sender and the middleware do the I/O. A webhook
URL is input from any customer, so every address that is not public unicast is refused unless
the operator allowed it: loopback, private, link-local (cloud metadata at 169.254.169.254),
shared (CGNAT), multicast, reserved and documentation ranges, and the IPv4-mapped, NAT64 and
6to4 forms of those.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidHost(ValueError):
    """A host that is neither a valid IP literal nor a valid host name."""


# IANA's special-purpose registries, with the reason shown to operators. Order matters only
# for readability: the ranges do not overlap within a family.
_IPV4_FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_IPV6_FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved"),
    ("100::/64", "reserved"),
    ("2001::/23", "reserved"),  # Teredo and other protocol assignments.
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "reserved"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_FORBIDDEN = tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in _IPV4_FORBIDDEN + _IPV6_FORBIDDEN)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")

# Label separators that IDNA maps to a dot, so "127。0。0。1" is 127.0.0.1 to a resolver.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_IPV4_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]+|[1-9][0-9]*|0")
# Labels of 1 to 63 characters, as IDNA requires.
_NAME = re.compile(r"[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*\.?")


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address, if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address in _MAPPED or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address (e.g. "loopback"), or None if it is."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = forbidden_reason(inner)
        return None if reason is None else "%s (in an IPv6 form)" % reason
    for network, reason in _FORBIDDEN:
        if address in network:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return None


def normalize_host(host: str) -> str:
    """The host as a resolver sees it: IDNA mappings applied (fullwidth digits, ideographic dots), lowercase."""
    if host.isascii():  # NFKC and the dots change no ASCII character: skip them (most hosts, every request).
        return host.strip("[]").lower()
    return unicodedata.normalize("NFKC", host.strip("[]")).translate(_DOTS).lower()


# Both are pure, and the sender calls each on every attempt with the few hosts a worker sends to:
# remembering the answers saves parsing an address twice per attempt. Host names only, no secret.
@functools.lru_cache(maxsize=1024)
def ip_literal(host: str) -> Address | None:
    """The address ``host`` spells, in any form a resolver accepts (2130706433, 0x7f.1, 0177.0.0.1, 127.1, [::1]).

    None when ``host`` is a name. Raises ``InvalidHost`` for something that ends like a number
    but is no address (256.1.1.1, 1.2.3.4.5, 0x7g.1): it must not be left to a resolver to guess.
    """
    return _ip_literal(normalize_host(host))


def _ip_literal(host: str) -> Address | None:
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise InvalidHost("not a valid IPv6 address") from None
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    # As in the WHATWG URL standard: a host whose last label is a number is an IPv4 address or nothing.
    last = parts[-1]
    if not last or not ((last.isascii() and last.isdigit()) or _IPV4_NUMBER.fullmatch(last)):
        return None
    numbers = []
    for part in parts:
        if not _IPV4_NUMBER.fullmatch(part):
            raise InvalidHost("not a valid IPv4 address")
        numbers.append(_ipv4_number(part))
    if len(numbers) > 4 or any(number > 255 for number in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise InvalidHost("not a valid IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part)


@functools.lru_cache(maxsize=1024)
def ascii_host(host: str) -> str:
    """The ASCII form of a host name (IDNA, punycode) or the canonical text of an IP literal.

    Raises ``InvalidHost`` when ``host`` is neither.
    """
    normalized = normalize_host(host)
    address = _ip_literal(normalized)
    if address is not None:
        return str(address)
    if normalized.isascii():
        encoded = normalized  # IDNA keeps ASCII labels as they are and only checks their length, as _NAME does.
    else:
        try:
            encoded = normalized.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise InvalidHost("not a valid host name") from None
    if not _NAME.fullmatch(encoded) or len(encoded.rstrip(".")) > 253:
        raise InvalidHost("not a valid host name")
    return encoded.rstrip(".")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings as networks; raises ``ValueError`` naming the first bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value))
        except (TypeError, ValueError) as exc:
            raise ValueError("%r is not a network in CIDR notation (%s)" % (value, exc)) from None
    return tuple(networks)


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a webhook may reach.

    ``allow_private`` lets everything through (development, demos, tests on loopback);
    ``allowed_networks`` lets chosen networks through, in any IPv6 form of their IPv4 addresses too.
    """

    allow_private: bool = False
    allowed_networks: tuple[Network, ...] = ()

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` is refused, or None when a webhook may go there."""
        if self.allow_private or self._allowed(address):
            return None
        return forbidden_reason(address)

    def _allowed(self, address: Address) -> bool:
        candidates = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        return any(candidate in network for candidate in candidates for network in self.allowed_networks)


def url_refusal(url: str, policy: AddressPolicy, *, https_only: bool) -> str | None:
    """Why ``url`` is refused before any name is resolved: "https_required", "forbidden_address" or None.

    Only what the URL itself says is judged: a host name may still resolve to a forbidden
    address, which the sender finds out when it resolves it.
    """
    parts = urlsplit(url)
    if https_only and parts.scheme.lower() != "https":
        return "https_required"
    address = ip_literal(parts.hostname or "")
    if address is not None and policy.refusal(address) is not None:
        return "forbidden_address"
    return None

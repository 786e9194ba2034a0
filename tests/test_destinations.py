"""The address policy, as pure functions: spellings of IP literals, and which addresses are public."""

from __future__ import annotations

import ipaddress

import pytest

from hybiscus_webhooks.destinations import (
    AddressPolicy,
    InvalidHost,
    ascii_host,
    embedded_ipv4,
    forbidden_reason,
    ip_literal,
    parse_networks,
    url_refusal,
)

LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("169.254.43518", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", "127.0.0.1"),  # Fullwidth digits and dots.
        ("127\u30020\u30020\u30021", "127.0.0.1"),  # Ideographic full stops.
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[0:0:0:0:0:ffff:7f00:1]", "::ffff:7f00:1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("[64:FF9B::A9FE:A9FE]", "64:ff9b::a9fe:a9fe"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_every_spelling_of_an_ip_literal_is_recognised(host: str, address: str) -> None:
    assert ip_literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "localhost", "1.example", "example.1a", "xn--bcher-kva.example", ""])
def test_names_are_not_literals(host: str) -> None:
    assert ip_literal(host) is None


@pytest.mark.parametrize(
    "host", ["256.0.0.1", "1.2.3.4.5", "08.0.0.1", "0x7g.1", "1..1", "4294967296", "example.0x1", "1.2.3.0400", "[::g]"]
)
def test_what_ends_like_a_number_but_is_no_address_is_invalid(host: str) -> None:
    with pytest.raises(InvalidHost):
        ip_literal(host)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.0.0.170", "reserved"),
        ("192.0.2.1", "documentation"),
        ("192.168.1.1", "private"),
        ("198.18.0.1", "reserved"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated.
        ("::ffff:127.0.0.1", "loopback (in an IPv6 form)"),
        ("::ffff:169.254.169.254", "link-local (in an IPv6 form)"),
        ("::ffff:10.0.0.1", "private (in an IPv6 form)"),
        ("64:ff9b::127.0.0.1", "loopback (in an IPv6 form)"),
        ("64:ff9b::a9fe:a9fe", "link-local (in an IPv6 form)"),
        ("64:ff9b:1::1", "reserved"),
        ("2002:7f00:1::1", "loopback (in an IPv6 form)"),
        ("2002:a9fe:a9fe::", "link-local (in an IPv6 form)"),
        ("2002:c0a8:101::1", "private (in an IPv6 form)"),
        ("2001::1", "reserved"),  # Teredo.
        ("2001:db8::1", "documentation"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("100::1", "reserved"),
        ("4000::1", "reserved"),
    ],
)
def test_non_public_addresses_are_forbidden_with_a_reason(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "192.169.0.1", "223.255.255.255",
                "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_the_ipv4_inside_ipv6_forms() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:1.2.3.4")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::1.2.3.4")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("2002:102:304:5::6")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) is None
    assert embedded_ipv4(LOOPBACK) is None


def test_the_policy_honours_the_allow_list_in_every_form() -> None:
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8", "fd00:1::/32"]))
    assert policy.refusal(LOOPBACK) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.2")) is None
    assert policy.refusal(ipaddress.ip_address("fd00:1::5")) is None
    assert policy.refusal(ipaddress.ip_address("fd00:2::5")) == "unique-local"
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) == "private"
    assert policy.refusal(ipaddress.ip_address("::1")) == "loopback"
    assert AddressPolicy(allow_private=True).refusal(ipaddress.ip_address("169.254.169.254")) is None
    assert AddressPolicy().refusal(ipaddress.ip_address("8.8.8.8")) is None


def test_networks_must_be_cidr() -> None:
    assert parse_networks(["10.0.0.0/8", "::1"]) == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1"))
    with pytest.raises(ValueError, match=r"'10\.0\.0\.1/8' is not a network"):
        parse_networks(["10.0.0.1/8"])
    with pytest.raises(ValueError, match="'intranet' is not a network"):
        parse_networks(["intranet"])


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("b\u00fccher.example", "xn--bcher-kva.example"),
        ("B\u00dcCHER.example", "xn--bcher-kva.example"),
        ("example\uff0ecom", "example.com"),
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),
        ("hooks_1.example", "hooks_1.example"),
        ("0x7f.1", "127.0.0.1"),
        ("[::FFFF:7F00:1]", "::ffff:7f00:1"),
    ],
)
def test_ascii_host(host: str, expected: str) -> None:
    if ":" in expected:
        # Python 3.13 writes IPv4-mapped addresses as ::ffff:127.0.0.1, earlier ones as ::ffff:7f00:1.
        assert ipaddress.ip_address(ascii_host(host)) == ipaddress.ip_address(expected)
    else:
        assert ascii_host(host) == expected


@pytest.mark.parametrize(
    "host",
    ["a..b", ".example", "a" * 64 + ".example", "exa\u202emple.com", "%31%32%37.0.0.1", "exa mple.com", "a!b.example",
     ("a" * 60 + ".") * 5 + "com"],
)
def test_invalid_host_names(host: str) -> None:
    with pytest.raises(InvalidHost):
        ascii_host(host)


def test_url_refusal_judges_only_what_the_url_spells() -> None:
    strict = AddressPolicy()
    assert url_refusal("http://0x7f.1:8080/h", strict, https_only=False) == "forbidden_address"
    assert url_refusal("https://[::ffff:169.254.169.254]/", strict, https_only=False) == "forbidden_address"
    assert url_refusal("https://localhost/h", strict, https_only=False) is None  # A name: the sender resolves it.
    assert url_refusal("https://8.8.8.8/h", strict, https_only=False) is None
    assert url_refusal("http://hooks.example/h", strict, https_only=True) == "https_required"
    assert url_refusal("HTTPS://hooks.example/h", strict, https_only=True) is None
    assert url_refusal("http://127.0.0.1/", AddressPolicy(allow_private=True), https_only=False) is None
    allowed = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8"]))
    assert url_refusal("http://2130706433/", allowed, https_only=False) is None

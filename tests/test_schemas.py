"""Webhook objects the schema has passed are remembered by fingerprint, and judged the same again."""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from hybiscus_webhooks import schemas
from hybiscus_webhooks.errors import InvalidWebhooks
from hybiscus_webhooks.schemas import Webhook, load_webhooks, parse_report

SECRET = "tok_S3CRET_5e1f0c9a77"
LOC = ["body", "config", "webhooks"]


class CountingSchema:
    """The module's schema, counting the lists handed to it."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.loads: list[list[Any]] = []

    def load(self, raw: list[Any], many: bool) -> Any:
        self.loads.append(raw)
        return self.schema.load(raw, many=many)


@pytest.fixture(autouse=True)
def schema(monkeypatch: pytest.MonkeyPatch) -> CountingSchema:
    monkeypatch.setattr(schemas, "_PASSED", OrderedDict())
    counting = CountingSchema(schemas._SCHEMA)
    monkeypatch.setattr(schemas, "_SCHEMA", counting)
    return counting


def load(*items: Any) -> tuple[Webhook, ...]:
    return load_webhooks({"config": {"webhooks": list(items)}}, max_webhooks=3)


def problems(*items: Any) -> list[tuple[list[Any], str]]:
    with pytest.raises(InvalidWebhooks) as caught:
        load(*items)
    return [(problem["loc"], problem["type"]) for problem in caught.value.problems]


A = {"url": "https://a.example/h", "auth_header": SECRET}
B = {"url": "https://b.example/h"}
C = {"url": "https://c.example/h", "auth_header": None}


def test_objects_the_schema_passed_are_not_handed_to_it_again(schema: CountingSchema) -> None:
    first = load(A, B, C)
    assert first == (Webhook("https://a.example/h", SECRET), Webhook("https://b.example/h"),
                     Webhook("https://c.example/h"))
    assert len(schema.loads) == 1
    # The same objects again, in another order, fewer of them, or parsed anew from JSON text.
    assert load(C, A) == (first[2], first[0])
    assert load_webhooks(parse_report(json.dumps({"config": {"webhooks": [A, B, C]}})), max_webhooks=3) == first
    assert len(schema.loads) == 1
    # One object the schema has not passed, and the list goes to the schema.
    assert load(A, {"url": "https://a.example/h", "auth_header": SECRET + "2"})[1].auth_header == SECRET + "2"
    assert len(schema.loads) == 2


@pytest.mark.parametrize("item, expected", [
    ({"url": "ftp://a.example/h"}, [(LOC + [0, "url"], "url_scheme")]),
    ({"url": "https://a.example/h", "auth_header": SECRET + " x"},
     [(LOC + [0, "auth_header"], "auth_header_characters")]),
    ({"url": "https://a.example/h", "auth_header": ""}, [(LOC + [0, "auth_header"], "auth_header_empty")]),
    ({"url": "https://a.example/h", "extra": 1}, [(LOC + [0, "extra"], "extra_forbidden")]),
])
def test_a_refused_object_is_refused_every_time_and_never_remembered(
    schema: CountingSchema, item: dict[str, Any], expected: list[tuple[list[Any], str]]
) -> None:
    for attempt in range(1, 3):
        assert problems(item) == expected
        assert len(schema.loads) == attempt
    assert not schemas._PASSED


def test_a_passed_object_beside_a_refused_one_leaves_the_refusal_at_its_index(schema: CountingSchema) -> None:
    load(A)
    assert problems(A, {"url": "https://b.example/h", "auth_header": 7}) == [(LOC + [1, "auth_header"], "string_type")]
    assert problems({"url": "nope"}, A) == [(LOC + [0, "url"], "url_scheme")]
    assert len(schema.loads) == 3


class Text(str):
    pass


@pytest.mark.parametrize("unlike, refused", [
    ({"url": Text("https://a.example/h"), "auth_header": SECRET}, False),  # A subclass may load otherwise.
    ({"url": "https://a.example/h", "auth_header": Text(SECRET)}, False),
    ({"url": "https://a.example/h", "auth_header": SECRET.encode()}, False),  # marshmallow decodes bytes.
    ({"url": "https://a.example/h", "auth_header": SECRET, "extra": None}, True),
    ({"auth_header": SECRET}, True),
])
def test_an_object_spelled_like_a_passed_one_but_of_other_types_or_keys_goes_to_the_schema(
    schema: CountingSchema, unlike: dict[str, Any], refused: bool
) -> None:
    load(A)
    if refused:
        assert problems(unlike)
    else:
        assert load(unlike) == (Webhook("https://a.example/h", SECRET),)
    assert len(schema.loads) == 2


def test_a_repeated_key_is_reported_even_in_an_object_the_schema_passed() -> None:
    load(A)
    body = '{"config": {"webhooks": [{"url": "https://a.example/h", "auth_header": "x", "auth_header": "%s"}]}}'
    with pytest.raises(InvalidWebhooks) as caught:
        load_webhooks(parse_report(body % SECRET), max_webhooks=3)
    assert [problem["type"] for problem in caught.value.problems] == ["duplicate_key"]


_TRICKY = st.text(alphabet="-:0123456789ab\x00\ud800é", max_size=6)


@hypothesis_settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(first=st.tuples(_TRICKY, st.none() | _TRICKY), second=st.tuples(_TRICKY, st.none() | _TRICKY))
def test_two_objects_share_a_fingerprint_only_when_they_hold_the_same_strings(
    first: tuple[str, str | None], second: tuple[str, str | None]
) -> None:
    def fingerprint(pair: tuple[str, str | None]) -> bytes | None:
        return schemas._fingerprint({"url": pair[0], "auth_header": pair[1]})

    assert (fingerprint(first) == fingerprint(second)) == (first == second)
    # A missing auth_header loads as null, and is remembered as null.
    assert schemas._fingerprint({"url": first[0]}) == fingerprint((first[0], None))


def test_no_two_short_pairs_of_strings_share_a_fingerprint() -> None:
    # Every pair over the characters a fingerprint's text is built with: a format that lets a length,
    # a separator or the null mark be read another way gives two of these the same text.
    def strings(longest: int) -> list[str]:
        return ["".join(chars) for size in range(longest + 1) for chars in itertools.product("01:-", repeat=size)]

    pairs = [(url, auth_header) for url in strings(4) for auth_header in [None, *strings(2)]]
    fingerprints = {schemas._fingerprint({"url": url, "auth_header": auth_header}) for url, auth_header in pairs}
    assert len(fingerprints) == len(pairs)


_URLS = st.sampled_from(["https://a.example/h", "http://b.example:8080/x?y=1", "ftp://a.example/h", "https://",
                         "https://a.example/" + "a" * 2048, "https://a.example/\u200bh"])
_HEADERS = st.sampled_from([None, "", SECRET, SECRET + " x", "x" * 1025, 3])
_ITEMS = st.one_of(
    st.fixed_dictionaries({"url": _URLS}),
    st.fixed_dictionaries({"url": _URLS, "auth_header": _HEADERS}),
    st.fixed_dictionaries({"url": _URLS, "auth_header": _HEADERS, "other": st.just(1)}),
    st.just({"auth_header": SECRET}), st.just("https://a.example/h"),
)


@hypothesis_settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(lists=st.lists(st.lists(_ITEMS, max_size=3), min_size=1, max_size=4))
def test_a_list_loads_the_same_whether_its_objects_were_passed_before_or_not(lists: list[list[Any]]) -> None:
    def outcome(items: list[Any]) -> Any:
        try:
            return load(*items)
        except InvalidWebhooks as exc:
            return exc.problems

    cold = []
    for items in lists:
        schemas._PASSED.clear()
        cold.append(outcome(items))
    schemas._PASSED.clear()
    assert [outcome(items) for items in lists] == cold  # Each after the others, remembering.
    assert [outcome(items) for items in lists] == cold  # And again, every object seen before.


def test_the_memory_holds_no_url_or_auth_header_and_is_bounded(
    schema: CountingSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schemas, "MAX_REMEMBERED_WEBHOOKS", 2)
    items = [{"url": "https://h%d.example/h" % n, "auth_header": SECRET} for n in range(3)]
    for item in items:
        load(item)
    assert len(schemas._PASSED) == 2
    assert all(SECRET.encode() not in key and b"example" not in key and len(key) == 16 for key in schemas._PASSED)
    load(items[2])
    assert len(schema.loads) == 3  # Still remembered.
    load(items[0])
    assert len(schema.loads) == 4  # The first remembered went first.

"""The URLs the schema has passed are remembered, and webhook objects with them judged the same again."""

from __future__ import annotations

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
    monkeypatch.setattr(schemas, "_PASSED_URLS", OrderedDict())
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
    # A URL the schema has not passed, and the list goes to the schema.
    assert load(A, {"url": "https://d.example/h", "auth_header": SECRET})[1].url == "https://d.example/h"
    assert len(schema.loads) == 2


def test_an_auth_header_is_checked_every_time_and_never_kept(schema: CountingSchema) -> None:
    load(A)
    # Another auth header with a URL the schema passed: checked by the schema's own check, not kept.
    assert load({"url": A["url"], "auth_header": SECRET + "2"}) == (Webhook(A["url"], SECRET + "2"),)
    assert len(schema.loads) == 1
    # One the check refuses goes to the schema, which refuses it in its own words.
    assert problems({"url": A["url"], "auth_header": SECRET + "\x7f"}) == [
        (LOC + [0, "auth_header"], "auth_header_characters")]
    assert len(schema.loads) == 2
    assert list(schemas._PASSED_URLS) == [A["url"]]


@pytest.mark.parametrize("code", [*range(0x100), 0x2028, 0x200B, 0xD800, 0xFEFF, 0x1F600])
def test_the_auth_header_check_takes_visible_ascii_and_nothing_else(code: int) -> None:
    value = "a" + chr(code) + "b"
    expected = None if 0x21 <= code <= 0x7E else "auth_header_characters"
    assert schemas._auth_header_problem(value) == expected
    assert schemas._auth_header_problem(chr(code)) == expected


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
    assert not schemas._PASSED_URLS


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


_URLS = st.sampled_from(["https://a.example/h", "http://b.example:8080/x?y=1", "ftp://a.example/h", "https://",
                         "https://a.example/" + "a" * 2048, "https://a.example/" + "a" * 300,
                         "https://a.example/\u200bh"])
_HEADERS = st.sampled_from([None, "", SECRET, SECRET + "2", SECRET + " x", "x" * 1024, "x" * 1025, "\x7f", "é", 3])
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
        schemas._PASSED_URLS.clear()
        cold.append(outcome(items))
    schemas._PASSED_URLS.clear()
    assert [outcome(items) for items in lists] == cold  # Each after the others, remembering.
    assert [outcome(items) for items in lists] == cold  # And again, every object seen before.


def test_the_memory_holds_urls_alone_short_ones_and_a_bounded_number(
    schema: CountingSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schemas, "MAX_REMEMBERED_URLS", 2)
    items = [{"url": "https://h%d.example/h" % n, "auth_header": SECRET} for n in range(3)]
    for item in items:
        load(item)
    assert list(schemas._PASSED_URLS) == [items[1]["url"], items[2]["url"]]
    load(items[2])
    assert len(schema.loads) == 3  # Still remembered.
    load(items[0])
    assert len(schema.loads) == 4  # The first remembered went first.
    # A long URL is judged by the schema each time rather than kept.
    long = {"url": "https://a.example/" + "a" * schemas.MAX_REMEMBERED_URL_LENGTH}
    assert load(long) == load(long) == (Webhook(long["url"]),)
    assert len(schema.loads) == 6
    assert all(len(url) <= schemas.MAX_REMEMBERED_URL_LENGTH for url in schemas._PASSED_URLS)


def _marks(report: Any) -> Any:
    """The repeated keys noted on the path to the webhooks: config, webhooks, and the webhook objects'
    own (an object with another key is refused whatever its keys)."""
    def repeated(value: Any, keys: set[str]) -> Any:
        return sorted(keys.intersection(getattr(value, "duplicates", ()))) if isinstance(value, dict) else None

    config = report.get("config") if isinstance(report, dict) else None
    webhooks = config.get("webhooks") if isinstance(config, dict) else None
    items = [repeated(item, {"url", "auth_header"}) for item in webhooks] if isinstance(webhooks, list) else None
    return repeated(report, {"config"}), repeated(config, {"webhooks"}), items


_SPACE = st.sampled_from(["", " ", "\n  ", "\t"])
_PLAIN = st.sampled_from(['1', 'null', '"a"', 'true', '"https://h.example/"'])
# Values that spell keys of the path, some after a quote that is escaped, as values elsewhere would.
_TRICKY = st.sampled_from(['"url"', '"\\"url"', '"x\\"webhooks"', '"auth_header"', '"config"', '{"url": 1}',
                           '[{"url": "a", "url": "b"}]'])
_VALUE = st.one_of(_PLAIN, _PLAIN, _PLAIN, _TRICKY)


@st.composite
def _objects(draw: Any, keys: list[str], values: Any, required: tuple[str, Any] | None = None) -> str:
    """JSON text of an object with keys drawn from ``keys``, repeats likely, and the ``required`` key among them."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(keys), values), max_size=3))
    if required is not None:
        pairs = draw(st.permutations([*pairs, (required[0], draw(required[1]))]))
    return "{" + ",".join('%s"%s"%s:%s%s' % (draw(_SPACE), draw(_spellings(key)), draw(_SPACE), draw(_SPACE), value)
                          for key, value in pairs) + "}" + draw(_SPACE)


def _spellings(key: str) -> Any:
    """The key as JSON text spells it, now and then with its first character escaped."""
    return st.sampled_from([key, key, key, "\\u%04x%s" % (ord(key[0]), key[1:])])


_ITEM = _objects(["url", "auth_header", "auth_header", "x"], _VALUE, required=("url", _VALUE))
_WEBHOOKS = st.lists(_ITEM, min_size=1, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
_CONFIG = _objects(["webhooks", "color", "color", "url"], _VALUE, required=("webhooks", _WEBHOOKS))
_REPORT = _objects(["config", "components", "components", "auth_header"], st.one_of(_VALUE, _WEBHOOKS),
                   required=("config", _CONFIG))


@hypothesis_settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(text=_REPORT, limits=st.sampled_from([(schemas.READ_FROM, schemas.MAX_TOP_KEYS),
                                             (0, schemas.MAX_TOP_KEYS), (0, 1)]))
def test_repeated_keys_on_the_path_are_noted_as_a_parse_that_sees_every_pair_notes_them(
    text: str, limits: tuple[int, int]
) -> None:
    reference = json.loads(text, object_pairs_hook=schemas._object)
    # READ_FROM 0: the top level read key by key, as in a long report; MAX_TOP_KEYS 1: then parsed whole.
    defaults = schemas.READ_FROM, schemas.MAX_TOP_KEYS
    schemas.READ_FROM, schemas.MAX_TOP_KEYS = limits
    try:
        parsed = parse_report(text)
    finally:
        schemas.READ_FROM, schemas.MAX_TOP_KEYS = defaults
    assert parsed == reference
    assert _marks(parsed) == _marks(reference)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
_DUMPS = st.fixed_dictionaries({
    "indent": st.sampled_from([None, 0, 2]), "ensure_ascii": st.booleans(),
    "separators": st.sampled_from([None, (",", ":"), (" , ", " : ")]),
})


@hypothesis_settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(value=_JSON, dumps=_DUMPS, cut=st.integers(min_value=0), edit=st.sampled_from(["", "drop", ",", "}", '"', " 1"]),
       read_from=st.sampled_from([0, schemas.READ_FROM]))
def test_any_text_is_parsed_or_refused_as_json_loads_does(value: Any, dumps: dict[str, Any], cut: int,
                                                          edit: str, read_from: int) -> None:
    text = json.dumps(value, **dumps)
    if edit:  # One character dropped, or something put in, somewhere: mostly no longer JSON.
        cut %= len(text) + 1
        text = text[:cut] + ("" if edit == "drop" else edit) + text[cut + (edit == "drop"):]
    try:
        expected: Any = json.loads(text)
    except ValueError as exc:
        expected = ValueError, str(exc)  # The same message, at the same position.
    default, schemas.READ_FROM = schemas.READ_FROM, read_from  # 0: the top level read key by key.
    try:
        parsed: Any = parse_report(text)
    except ValueError as exc:
        parsed = ValueError, str(exc)
    finally:
        schemas.READ_FROM = default
    assert parsed == expected
    assert type(parsed) is type(expected)


def test_more_keys_at_the_top_than_a_report_has_are_parsed_whole_and_still_judged() -> None:
    many = ", ".join('"k%d": %d' % (n, n) for n in range(schemas.MAX_TOP_KEYS))
    text = '{%s, "config": {"webhooks": []}, "config": {"webhooks": [{"url": "ftp://x"}]}}' % many
    assert schemas._read_object(text) is None
    assert _marks(parse_report(text)) == (["config"], [], [[]])
    assert _marks(parse_report(text.replace('"config": {"webhooks": []}, ', ""))) == ([], [], [[]])


def test_escapes_outside_config_do_not_send_a_report_to_the_parse_that_sees_every_pair(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs_parses = []
    marking = schemas._object

    def counting(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        pairs_parses.append(pairs)
        return marking(pairs)

    monkeypatch.setattr(schemas, "_object", counting)
    # As json.dumps writes a report by default: every character beyond ASCII escaped, in a component.
    report = {"components": [{"type": "Text", "options": {"text": "Résumé \u2014 Zürich"}}],
              "config": {"webhooks": [{"url": "https://h.example/", "auth_header": "a"}]}}
    assert parse_report(json.dumps(report)) == report
    assert pairs_parses == []
    # In config's value an escape may spell a key: that report is parsed by the parse that sees every pair.
    report["config"]["title"] = "Zürich"
    assert parse_report(json.dumps(report)) == report
    assert pairs_parses != []


@pytest.mark.parametrize("repeated", ["url", "auth_header"])
@pytest.mark.parametrize("padding", [0, 2 * schemas.READ_FROM])  # Counted in the whole text, and read key by key.
def test_a_key_repeated_in_a_webhook_object_is_noted_in_a_short_or_a_long_report(repeated: str, padding: int) -> None:
    item = '{"url": "https://h.example/", "auth_header": "a", "%s": "b"}' % repeated
    component = json.dumps({"type": "Text", "options": {"text": "x" * padding}})
    for text in ('{"components": [%s], "config": {"webhooks": [%s]}}' % (component, item),
                 '{"config": {"webhooks": [%s]}, "components": [%s]}' % (item, component)):
        assert _marks(parse_report(text)) == ([], [], [[repeated]])

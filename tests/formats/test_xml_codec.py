"""XML codec: tree shape, namespaces, streamed records, hardened parsing and writing."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.expressions import Scope
from formats.codecs import CodecError, codecs
from formats.codecs.xml_codec import hardened_parser, read_elements

xml = codecs.get("xml")


def read(data: bytes, **options):
    return list(xml.read(data, options))


def test_one_or_many_repeated_elements_read_alike_through_an_index():
    from flows.mapping import compile_mapping

    mapping = compile_mapping({"records": "line[*]", "fields": [{"target": "sku", "source": "sku"}]})
    for body, skus in [(b"<o><line><sku>A</sku></line></o>", ["A"]),
                       (b"<o><line><sku>A</sku></line><line><sku>B</sku></line></o>", ["A", "B"])]:
        (document,) = read(body)
        assert [mapping.apply(r, Scope(payload=document, parent=p))["sku"] for r, p in mapping.records_of(document)] == skus


def test_undeclared_namespaces_read_as_local_names_and_declared_ones_with_their_prefix():
    body = b'<a:r xmlns:a="urn:a" xmlns:b="urn:b"><b:x b:k="1">v</b:x></a:r>'
    assert read(body) == [{"x": {"@k": "1", "#text": "v"}}]
    assert read(body, namespaces={"b": "urn:b"}) == [{"b:x": {"@b:k": "1", "#text": "v"}}]


def test_text_beside_children_is_kept_when_not_blank():
    assert read(b"<r>\n  <a>1</a>\n</r>") == [{"a": "1"}]
    assert read(b"<r>note <a>1</a> end</r>") == [{"a": "1", "#text": "note  end"}]


def test_records_stream_and_are_cleared_as_they_go():
    body = b"<feed><head>h</head>" + b"".join(b"<item><n>%d</n></item>" % i for i in range(2000)) + b"</feed>"
    seen = 0
    for element, _ in read_elements(body, {"record": "item"}):
        # Earlier records have been removed from the tree (the parser may have read ahead).
        assert element.getprevious() is None or element.getprevious().getprevious() is None
        seen += 1
    assert seen == 2000


def test_a_record_nested_in_a_record_stays_inside_it():
    assert read(b"<r><item><n>1</n><item><n>2</n></item></item></r>", record="item") == [{"n": "1", "item": {"n": "2"}}]


@pytest.mark.parametrize("body", [
    b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/hostname">]><r>&e;</r>',
    b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://attacker.invalid/x.dtd"> %p;]><r/>',
    b'<!DOCTYPE r PUBLIC "-//X//DTD X//EN" "http://attacker.invalid/x.dtd"><r/>',
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'.encode("utf-16"),
])
def test_doctypes_and_entities_are_refused_never_expanded(body):
    with pytest.raises(CodecError) as error:
        read(body)
    assert "DOCTYPE" in error.value.reason and error.value.location


def test_utf16_payloads_read():
    assert read('<?xml version="1.0" encoding="UTF-16"?><r><a>é</a></r>'.encode("utf-16")) == [{"a": "é"}]


def test_the_hardened_parser_keeps_entities_unexpanded():
    from lxml import etree

    root = etree.fromstring(b'<!DOCTYPE r [<!ENTITY e "expanded">]><r>&e;</r>', hardened_parser())
    assert "expanded" not in etree.tostring(root).decode()


def test_write_escapes_and_uses_the_chosen_names():
    data = xml.write([{"name": "A & <B>", "@id": "7", "tags": ["x", "y"], "none": None}], ["name"],
                     {"root": "people", "record": "person"}, single=False)
    assert b"<people><person id=\"7\"><name>A &amp; &lt;B&gt;</name><tags>x</tags><tags>y</tags><none></none></person></people>" in data
    assert read(data, record="person") == [{"@id": "7", "name": "A & <B>", "tags": ["x", "y"], "none": ""}]


def test_write_a_single_record_as_the_document():
    data = xml.write([{"total": "10.50"}], ["total"], {"root": "invoice"}, single=True)
    assert read(data) == [{"total": "10.50"}]


@pytest.mark.parametrize("record, reason", [
    ({"bad name": "x"}, "not a valid XML name"),
    ({"1st": "x"}, "not a valid XML name"),
    ({"p:x": "x"}, "not declared"),
    ({"x": "\x01"}, "control characters"),
    ({"x": {"@a": {"b": 1}}}, "structure"),
])
def test_write_refuses_what_xml_cannot_say(record, reason):
    with pytest.raises(CodecError) as error:
        xml.write([record], list(record), {}, single=False)
    assert reason in error.value.reason and error.value.location == "record 1"


def test_infer_fields_lists_attribute_text_and_repeated_paths():
    body = b'<r id="1"><line n="1"><sku>A</sku></line><line n="2"><sku>B</sku></line><t c="EUR">5</t></r>'
    assert xml.infer_fields(body, {}) == ["@id", "line[*].@n", "line[*].sku", "t.@c", "t.#text"]


names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=10).filter(
    lambda t: t.strip() == t and t != "")


@given(st.lists(st.dictionaries(names, texts | st.lists(texts, min_size=2, max_size=3), min_size=1, max_size=4), max_size=5))
def test_write_then_read_round_trips(records):
    data = xml.write(records, [], {"record": "row"}, single=False)
    assert read(data, record="row") == records

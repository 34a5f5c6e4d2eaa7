"""The XML codec's fast element-to-tree conversion reads every document exactly as the
straightforward one it replaced (kept here as the reference): same keys, same order, same
lists for repeats, same text rules, with namespaces, comments, CDATA and records."""
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import example, given, settings
from hypothesis import strategies as st

from formats.codecs import codecs
from formats.codecs.xml_codec import Names, read_elements


def reference_tree(element, names: Names) -> Any:
    """The conversion as it was before the fast one (commit 8952dc9)."""
    attrib = element.attrib
    if not len(element):
        text = element.text or ""
        if not attrib:
            return text
        tree = {"@" + names.name(key): value for key, value in attrib.items()}
        if text.strip():
            tree["#text"] = text
        return tree
    tree: dict[str, Any] = {"@" + names.name(key): value for key, value in attrib.items()} if attrib else {}
    texts = [element.text or ""]
    for child in element:
        tail = child.tail
        if tail:
            texts.append(tail)
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = names.name(tag)
        value = (child.text or "") if not len(child) and not child.attrib else reference_tree(child, names)
        if name not in tree:
            tree[name] = value
        elif isinstance(tree[name], list):
            tree[name].append(value)
        else:
            tree[name] = [tree[name], value]
    text = "".join(texts).strip()
    if text:
        tree["#text"] = text
    return tree


ELEMENT_NAMES = ["a", "b", "row", "p:a", "q:row", "p:row"]
ATTRIBUTE_NAMES = ["id", "k", "p:k", "q:id"]
texts = st.text(st.sampled_from(list("xy é<&>\"' \n\t")), max_size=6)
leaf_content = st.one_of(
    texts.map(escape),
    texts.map(lambda t: f"<![CDATA[{t.replace(']]>', '')}]]>"),
    texts.map(lambda t: f"<!--{t.replace('-', '')}-->"),
    st.just("<?pi data?>"),
    st.sampled_from([" ", "\n  ", "\t"]),
)


def element(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(
        lambda name, attributes, content: (
            f"<{name}{''.join(f' {k}={quoteattr(v)}' for k, v in attributes.items())}>{''.join(content)}</{name}>"),
        st.sampled_from(ELEMENT_NAMES),
        st.dictionaries(st.sampled_from(ATTRIBUTE_NAMES), texts, max_size=2),
        st.lists(st.one_of(leaf_content, children), max_size=5),
    )


elements = st.recursive(element(st.nothing()), element, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(body=st.lists(st.one_of(elements, leaf_content), max_size=6),
       namespaces=st.sampled_from([None, {"p": "urn:p"}, {"p": "urn:p", "q": "urn:q"}]),
       record=st.sampled_from([None, "row", "p:row", "a"]))
@example(body=["x<a>1</a> y <a k='2'>3</a>z<!--c-->w<b/> "], namespaces=None, record=None)
@example(body=["<row id='1'> <a>1</a>\n <p:a>2</p:a> </row>", "<q:row><row>n</row></q:row>"],
         namespaces={"p": "urn:p"}, record="row")
def test_fast_trees_equal_the_reference_conversion(body, namespaces, record):
    data = f'<r xmlns:p="urn:p" xmlns:q="urn:q" a="1">{"".join(body)}</r>'.encode()
    options = {"namespaces": namespaces, "record": record}
    expected = [reference_tree(e, names) for e, names in read_elements(data, options)]
    assert list(codecs.get("xml").read(data, options)) == expected

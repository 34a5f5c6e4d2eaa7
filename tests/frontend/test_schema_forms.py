"""The JSON Schema form renderer: inputs per property type, posted values read back typed,
secrets never shown, and schema/serializer messages put beside the field they name."""
from django.http import QueryDict

from formats.codecs import codecs
from frontend.schema_forms import errors_by_field, read_form, schema_fields
from lib.registry import options_errors

SCHEMA = {"type": "object", "required": ["url"], "properties": {
    "url": {"type": "string", "title": "URL"},
    "retries": {"type": "integer"},
    "verify": {"type": "boolean", "default": True},
    "method": {"enum": ["POST", "PUT"]},
    "hosts": {"type": "array", "items": {"type": "string"}},
    "headers": {"type": "object"},
    "password": {"type": "string"},
}}


def test_each_property_type_gets_its_input_and_secrets_stay_blank():
    fields = {f.name: f for f in schema_fields(SCHEMA, {"url": "https://x", "hosts": ["a", "b"], "password": "hunter2",
                                                         "headers": {"A": "1"}}, prefix="options.", secrets=("password",))}
    assert [fields[n].widget for n in SCHEMA["properties"]] == ["text", "number", "checkbox", "select", "lines", "json",
                                                                "password"]
    assert fields["url"].required and fields["url"].input_name == "options.url" and fields["url"].label == "URL"
    assert fields["verify"].checked and fields["hosts"].value == "a\nb" and '"A": "1"' in fields["headers"].value
    assert fields["password"].value == ""


def test_a_posted_form_reads_back_typed_and_bad_json_is_named():
    post = QueryDict(mutable=True)
    post.update({"o.url": "https://x", "o.retries": "3", "o.method": "PUT", "o.hosts": "a\n\n b \n", "o.headers": "{oops",
                 "o.password": ""})
    values, errors = read_form(SCHEMA, post, "o.", secrets=("password",))
    assert values == {"url": "https://x", "retries": 3, "verify": False, "method": "PUT", "hosts": ["a", "b"]}
    assert list(errors) == ["headers"] and "not valid JSON" in errors["headers"][0]


def test_a_number_that_is_not_one_is_left_for_the_schema_to_name():
    post = QueryDict("o.url=u&o.retries=three")
    values, _ = read_form(SCHEMA, post, "o.")
    assert errors_by_field(options_errors(SCHEMA, values)) == {"retries": ["'three' is not of type 'integer'"]}


def test_schema_messages_go_beside_their_field():
    csv_schema = codecs.get("csv").options_schema
    messages = options_errors(csv_schema, {"delimiter": ";;;", "skip_rows": -1})
    placed = errors_by_field(messages)
    assert set(placed) == {"delimiter", "skip_rows"}
    assert errors_by_field(options_errors(SCHEMA, {})) == {"url": ["required"]}

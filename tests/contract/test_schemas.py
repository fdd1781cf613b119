"""The exported JSON Schemas guard the message contracts against breaking changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from jsonschema import Draft202012Validator
from pydantic import Field

from signgate_contracts import CommandRejected, Event, encode
from signgate_contracts.schemas import (
    TOPIC_INDEX,
    committed_files,
    committed_schemas,
    exported_files,
    message_classes,
    message_schema,
    message_schemas,
    topic_index,
)
from signgate_contracts.schemas.__main__ import main as export
from signgate_contracts.schemas.compatibility import (
    breaking_changes,
    topic_index_breaking_changes,
)

REMEDY = "add a new message type instead; a compatible change adds optional fields with defaults"


# -- the committed schemas against the current models --


def test_committed_schemas_are_up_to_date() -> None:
    """The committed schema files are exactly what `make schemas` writes from the current models."""
    committed = committed_files()
    stale = sorted(name for name, text in exported_files().items() if committed.get(name) != text)
    assert not stale, (
        f"schemas out of date or missing: {', '.join(stale)}; "
        "run `make schemas` and commit the result"
    )


def test_no_committed_message_type_was_removed() -> None:
    """Every message type with a committed schema is still registered on a topic."""
    removed = sorted(committed_schemas().keys() - message_schemas().keys())
    assert not removed, (
        f"message types removed: {', '.join(removed)}; removing a type is a breaking change; "
        f"{REMEDY}"
    )


def test_no_breaking_change_against_committed_schemas() -> None:
    """No message accepts less, or carries fewer fields, than its committed schema says."""
    current = message_schemas()
    failures = [
        f"breaking change in {type_}: {finding}"
        for type_, committed in committed_schemas().items()
        if type_ in current
        for finding in breaking_changes(committed, current[type_])
    ]
    assert not failures, "\n".join(failures) + f"\n{REMEDY}"


def test_topics_keep_every_committed_topic_and_message_type() -> None:
    """No topic disappears, drops a message type it carried, or changes what its key is."""
    committed = json.loads(committed_files()[TOPIC_INDEX])
    failures = topic_index_breaking_changes(committed, topic_index())
    assert not failures, "breaking change in topics.json:\n" + "\n".join(failures)


@pytest.mark.parametrize("type_", sorted(message_classes()))
def test_serialised_form_is_accepted_by_own_schema(type_: str) -> None:
    """What a message serialises to is accepted by its (validation-mode) exported schema."""
    message = message_classes()[type_]
    emitted = message_schema(message, mode="serialization")
    accepted = message_schema(message, mode="validation")
    assert breaking_changes(emitted, accepted) == []


@pytest.mark.parametrize("type_", sorted(message_classes()))
def test_exported_schema_is_valid_json_schema(type_: str) -> None:
    """Each exported schema is a valid draft 2020-12 JSON Schema."""
    Draft202012Validator.check_schema(message_schemas()[type_])


def test_encoded_rejection_matches_its_committed_schema() -> None:
    """An encoded `command.rejected` validates against its committed schema."""
    rejection = CommandRejected(status=404, code="document_not_found", message="Document not found")
    Draft202012Validator(committed_schemas()["command.rejected"]).validate(
        json.loads(encode(rejection))
    )


# -- the exporter (`make schemas`) --


def _committed_in(directory: Path) -> dict[str, Any]:
    return {path.name: json.loads(path.read_text()) for path in directory.glob("*.json")}


def test_export_writes_one_file_per_type_and_the_topic_index(tmp_path: Path) -> None:
    """An export into an empty folder writes `<type>.json` per message and `topics.json`."""
    assert export(["--dir", str(tmp_path)]) == 0
    written = _committed_in(tmp_path)
    assert set(written) == {f"{type_}.json" for type_ in message_classes()} | {TOPIC_INDEX}
    assert written["command.rejected.json"] == message_schemas()["command.rejected"]
    assert all(path.read_text().endswith("}\n") for path in tmp_path.glob("*.json"))


def test_export_holds_back_a_breaking_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exporter refuses to overwrite a schema with a breaking change and exits 1."""
    baseline = message_schemas()["command.rejected"]
    baseline["properties"]["legacy_reason"] = {"type": "string"}
    committed = json.dumps(baseline)
    (tmp_path / "command.rejected.json").write_text(committed)
    assert export(["--dir", str(tmp_path)]) == 1
    assert (tmp_path / "command.rejected.json").read_text() == committed
    assert "/legacy_reason: property removed" in capsys.readouterr().out


def test_export_with_allow_breaking_overwrites(tmp_path: Path) -> None:
    """With --allow-breaking the exporter overwrites a schema despite a breaking change."""
    (tmp_path / "command.rejected.json").write_text('{"type": "object", "required": ["x"]}')
    assert export(["--dir", str(tmp_path), "--allow-breaking"]) == 0
    assert _committed_in(tmp_path)["command.rejected.json"] == message_schemas()["command.rejected"]


def test_export_removes_stale_schemas_only_with_prune(tmp_path: Path) -> None:
    """The schema of a type no longer registered stays (exit 1) unless --prune is given."""
    stale = tmp_path / "recipient.forgotten.json"
    stale.write_text("{}\n")
    assert export(["--dir", str(tmp_path)]) == 1
    assert stale.exists()
    assert export(["--dir", str(tmp_path), "--prune"]) == 0
    assert not stale.exists()


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    """`--check` reports an out-of-date folder with exit 1 and leaves it untouched."""
    assert export(["--dir", str(tmp_path), "--check"]) == 1
    assert list(tmp_path.iterdir()) == []
    export(["--dir", str(tmp_path)])
    assert export(["--dir", str(tmp_path), "--check"]) == 0


# -- breaking_changes on hand-written schemas --


def obj(*required: str, **properties: Any) -> dict[str, Any]:
    """An object schema with the given properties, of which ``required`` are required."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_STRING = {"anyOf": [STRING, {"type": "null"}], "default": None}


def test_identical_schemas_have_no_breaking_change() -> None:
    """A schema compared with itself has no breaking change."""
    schema = obj("code", code=STRING, field=NULLABLE_STRING)
    assert breaking_changes(schema, schema) == []


def test_removed_field_is_breaking() -> None:
    """Removing a field is reported as breaking."""
    assert breaking_changes(obj(code=STRING, field=STRING), obj(code=STRING)) == [
        "/field: property removed"
    ]


def test_new_required_field_is_breaking() -> None:
    """Adding a required field is reported as breaking."""
    assert breaking_changes(obj(code=STRING), obj("reason", code=STRING, reason=STRING)) == [
        "/reason: new required property"
    ]


def test_optional_field_becoming_required_is_breaking() -> None:
    """Making an optional field required is reported as breaking."""
    assert breaking_changes(obj(code=STRING), obj("code", code=STRING)) == [
        "/code: became required"
    ]


def test_new_optional_field_is_not_breaking() -> None:
    """Adding an optional field is not breaking."""
    assert breaking_changes(obj(code=STRING), obj(code=STRING, field=NULLABLE_STRING)) == []


def test_required_field_becoming_optional_is_not_breaking() -> None:
    """Relaxing a required field to optional is not breaking."""
    assert breaking_changes(obj("code", code=STRING), obj(code=STRING)) == []


def test_annotation_changes_are_not_breaking() -> None:
    """Changing titles, descriptions or defaults is not breaking."""
    old = obj(code={"type": "string", "title": "Code", "description": "old", "default": "a"})
    new = obj(code={"type": "string", "title": "Reason", "description": "new", "default": "b"})
    assert breaking_changes(old, new) == []


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        ({"type": ["string", "null"]}, STRING, "type narrowed from null|string to string"),
        ({"type": "number"}, INTEGER, "type narrowed from number to integer"),
        ({}, STRING, "type restricted to string"),
        (NULLABLE_STRING, STRING, "lost alternative null"),
        ({"oneOf": [STRING, INTEGER]}, {"oneOf": [INTEGER]}, "lost alternative string"),
    ],
    ids=["type-list", "number-to-integer", "any-to-string", "anyOf", "oneOf"],
)
def test_narrowed_type_is_breaking(old: dict[str, Any], new: dict[str, Any], finding: str) -> None:
    """Accepting fewer JSON types, or fewer union alternatives, is reported as breaking."""
    assert breaking_changes(obj(value=old), obj(value=new)) == [f"/value: {finding}"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (STRING, {"type": ["string", "null"]}),
        (INTEGER, {"type": "number"}),
        (STRING, {}),
        (STRING, NULLABLE_STRING),
        ({"oneOf": [INTEGER]}, {"oneOf": [STRING, INTEGER]}),
        ({"enum": ["a"], "type": "string"}, {"enum": ["a", "b"], "type": "string"}),
        ({"const": "a", "type": "string"}, {"enum": ["a", "b"], "type": "string"}),
        ({"const": "a", "type": "string"}, STRING),
        ({"type": "string", "maxLength": 5}, {"type": "string", "maxLength": 10}),
        ({"type": "string", "minLength": 5}, STRING),
        ({"type": "string", "pattern": "^[0-9]+$"}, STRING),
        ({"type": "string", "format": "uuid"}, STRING),
        ({"type": "integer", "minimum": 1, "maximum": 10}, {"type": "integer", "minimum": 0}),
        ({"type": "integer", "multipleOf": 4}, {"type": "integer", "multipleOf": 2}),
        ({"type": "array", "items": STRING}, {"type": "array", "items": NULLABLE_STRING}),
    ],
    ids=[
        "nullable",
        "integer-to-number",
        "any",
        "anyOf-null",
        "oneOf-alternative",
        "enum-value",
        "const-to-enum",
        "const-dropped",
        "maxLength-raised",
        "minLength-dropped",
        "pattern-dropped",
        "format-dropped",
        "range-widened",
        "multipleOf-divisor",
        "items",
    ],
)
def test_widening_is_not_breaking(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Accepting more values than before is not breaking."""
    assert breaking_changes(obj(value=old), obj(value=new)) == []


def test_lost_enum_value_is_breaking() -> None:
    """An enum (Literal) that loses a value is reported as breaking."""
    old = {"enum": [400, 401, 404], "type": "integer"}
    new = {"enum": [400, 404], "type": "integer"}
    assert breaking_changes(obj(status=old), obj(status=new)) == [
        "/status: no longer accepts values 401"
    ]


def test_new_enum_on_free_string_is_breaking() -> None:
    """Restricting a free string to a set of values is reported as breaking."""
    new = {"enum": ["sms", "email"], "type": "string"}
    assert breaking_changes(obj(channel=STRING), obj(channel=new)) == [
        '/channel: restricted to values "sms", "email"'
    ]


def test_changed_const_is_breaking() -> None:
    """Changing a `const` (a literal `type`, say) is reported as breaking."""
    old = {"const": "recipient.locked", "type": "string"}
    new = {"const": "recipient.locked_out", "type": "string"}
    assert breaking_changes(obj(type=old), obj(type=new)) == [
        '/type: const changed from "recipient.locked" to "recipient.locked_out"'
    ]


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        ({}, {"maxLength": 50}, "maxLength added (50)"),
        ({"maxLength": 100}, {"maxLength": 50}, "maxLength lowered from 100 to 50"),
        ({"minLength": 1}, {"minLength": 3}, "minLength raised from 1 to 3"),
        ({}, {"pattern": "^[0-9]+$"}, 'pattern added ("^[0-9]+$")'),
        (
            {"pattern": "^[0-9]+$"},
            {"pattern": "^[0-9]{6}$"},
            'pattern changed from "^[0-9]+$" to "^[0-9]{6}$"',
        ),
        ({}, {"format": "email"}, 'format added ("email")'),
        ({"format": "uuid"}, {"format": "email"}, 'format changed from "uuid" to "email"'),
    ],
    ids=[
        "maxLength-added",
        "maxLength-lowered",
        "minLength-raised",
        "pattern-added",
        "pattern-changed",
        "format-added",
        "format-changed",
    ],
)
def test_tightened_string_is_breaking(
    old: dict[str, Any], new: dict[str, Any], finding: str
) -> None:
    """A string that gains or tightens maxLength, minLength, pattern or format is breaking."""
    assert breaking_changes(
        obj(code={"type": "string", **old}), obj(code={"type": "string", **new})
    ) == [f"/code: {finding}"]


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        ({"minimum": 1}, {"minimum": 2}, "minimum raised from 1 to 2"),
        ({}, {"minimum": 1}, "minimum added (1)"),
        ({"maximum": 10}, {"maximum": 5}, "maximum lowered from 10 to 5"),
        ({"exclusiveMinimum": 0}, {"exclusiveMinimum": 1}, "exclusiveMinimum raised from 0 to 1"),
        (
            {"exclusiveMaximum": 11},
            {"exclusiveMaximum": 10},
            "exclusiveMaximum lowered from 11 to 10",
        ),
        ({"multipleOf": 2}, {"multipleOf": 3}, "multipleOf changed from 2 to 3"),
    ],
    ids=[
        "minimum-raised",
        "minimum-added",
        "maximum-lowered",
        "exclusiveMinimum-raised",
        "exclusiveMaximum-lowered",
        "multipleOf-changed",
    ],
)
def test_tightened_number_range_is_breaking(
    old: dict[str, Any], new: dict[str, Any], finding: str
) -> None:
    """A number whose range tightens is reported as breaking."""
    assert breaking_changes(
        obj(retries={"type": "integer", **old}), obj(retries={"type": "integer", **new})
    ) == [f"/retries: {finding}"]


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        ({"minItems": 1}, {"minItems": 2}, "minItems raised from 1 to 2"),
        ({"maxItems": 50}, {"maxItems": 10}, "maxItems lowered from 50 to 10"),
        ({}, {"uniqueItems": True}, "uniqueItems added"),
    ],
    ids=["minItems-raised", "maxItems-lowered", "uniqueItems-added"],
)
def test_tightened_array_is_breaking(
    old: dict[str, Any], new: dict[str, Any], finding: str
) -> None:
    """An array whose length bounds tighten is reported as breaking."""
    assert breaking_changes(
        obj(orders={"type": "array", **old}), obj(orders={"type": "array", **new})
    ) == [f"/orders: {finding}"]


def test_change_inside_nested_object_is_reported_with_its_path() -> None:
    """A breaking change inside a nested object is reported at the nested field's path."""
    old = obj(phone=obj("number", country_code=STRING, number=STRING))
    new = obj(phone=obj("number", number={"type": "string", "maxLength": 15}))
    assert breaking_changes(old, new) == [
        "/phone/country_code: property removed",
        "/phone/number: maxLength added (15)",
    ]


def test_change_inside_array_items_is_reported_with_its_path() -> None:
    """A breaking change in the items of an array is reported under `[]`."""
    old = obj(recipients={"type": "array", "items": obj(email=STRING)})
    new = obj(recipients={"type": "array", "items": obj("email", email=STRING)})
    assert breaking_changes(old, new) == ["/recipients/[]/email: became required"]


def test_change_inside_a_referenced_definition_is_found() -> None:
    """`$ref`s into `$defs` are resolved, so a change in a shared definition is reported."""
    old = {**obj(phone={"$ref": "#/$defs/Phone"}), "$defs": {"Phone": obj(number=STRING)}}
    new = {**obj(phone={"$ref": "#/$defs/Phone"}), "$defs": {"Phone": obj(number=INTEGER)}}
    assert breaking_changes(old, new) == ["/phone/number: type narrowed from string to integer"]


def test_inlining_or_renaming_a_definition_is_not_breaking() -> None:
    """Moving a definition into `$defs` under any name, or inlining it, is not breaking."""
    inline = obj(phone=obj("number", number=STRING))
    referenced = {
        **obj(phone={"$ref": "#/$defs/PhoneNumber"}),
        "$defs": {"PhoneNumber": obj("number", number=STRING)},
    }
    assert breaking_changes(inline, referenced) == []
    assert breaking_changes(referenced, inline) == []


def test_recursive_definitions_are_compared_without_looping() -> None:
    """A recursive definition is compared once and still reports changes inside it."""

    def tree(label: dict[str, Any]) -> dict[str, Any]:
        node = obj(label=label, children={"type": "array", "items": {"$ref": "#/$defs/Node"}})
        return {"$ref": "#/$defs/Node", "$defs": {"Node": node}}

    assert breaking_changes(tree(STRING), tree(STRING)) == []
    assert breaking_changes(tree(STRING), tree(INTEGER)) == [
        "/label: type narrowed from string to integer"
    ]


def test_narrowed_alternative_is_reported_rather_than_lost() -> None:
    """When a union alternative is only narrowed, the narrowing is reported, not a lost branch."""
    old = {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]}
    new = {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]}
    assert breaking_changes(obj(code=old), obj(code=new)) == [
        "/code: maxLength lowered from 10 to 5"
    ]


def test_lost_union_member_model_is_named() -> None:
    """A discriminated union that loses a member model names the lost definition."""
    defs = {"Sms": obj(channel={"const": "sms"}), "Email": obj(channel={"const": "email"})}
    old = {
        **obj(delivery={"oneOf": [{"$ref": "#/$defs/Sms"}, {"$ref": "#/$defs/Email"}]}),
        "$defs": defs,
    }
    new = {**obj(delivery={"oneOf": [{"$ref": "#/$defs/Sms"}]}), "$defs": {"Sms": defs["Sms"]}}
    assert breaking_changes(old, new) == ["/delivery: lost alternative Email"]


def test_forbidding_additional_properties_is_breaking() -> None:
    """Refusing unknown fields that were accepted before is reported as breaking."""
    assert breaking_changes(
        obj(code=STRING), {**obj(code=STRING), "additionalProperties": False}
    ) == ["/: additional properties no longer accepted"]


def test_pydantic_model_narrowed_to_literal_is_breaking() -> None:
    """Narrowing a pydantic `str` field to a `Literal` is breaking; a new optional field is not."""

    class DeliveryFailedV1(Event):
        type: Literal["otp.delivery_failed"] = "otp.delivery_failed"
        channel: str

    class DeliveryFailedV2(Event):
        type: Literal["otp.delivery_failed"] = "otp.delivery_failed"
        channel: Literal["sms", "email"]
        provider: str | None = Field(default=None, description="Which gateway refused it.")

    assert breaking_changes(message_schema(DeliveryFailedV1), message_schema(DeliveryFailedV2)) == [
        '/channel: restricted to values "sms", "email"'
    ]


def test_topic_index_changes_that_break_are_reported() -> None:
    """Dropping a topic or a message type from a topic, or changing its key, is breaking."""
    old = {
        "a.events": {"key": "package_id", "messages": ["x.happened", "y.happened"]},
        "b.events": {"key": "package_id", "messages": []},
    }
    new = {"a.events": {"key": "challenge id", "messages": ["x.happened", "z.happened"]}}
    assert topic_index_breaking_changes(old, new) == [
        "a.events: no longer carries y.happened",
        "a.events: key changed from 'package_id' to 'challenge id'",
        "b.events: topic removed",
    ]

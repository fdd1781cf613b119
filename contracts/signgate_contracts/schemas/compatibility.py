"""Whether a new JSON Schema of a message still accepts everything its old schema accepted.

A change is *breaking* when a sender that was valid under the old schema is refused, or a
reader that relied on a field finds it gone: a removed property, a property that is newly
required, or a narrowed value space (fewer types, fewer enum values, a changed ``const``,
a new or changed ``pattern``/``format``, tighter bounds, a lost ``anyOf``/``oneOf``
alternative). Widening is not breaking.

The comparison is structural and conservative: where containment cannot be decided (two
different regular expressions) the change is reported. ``$ref`` is resolved within each
document (``#/...`` pointers only); annotations (``title``, ``description``, ``default``,
``examples``, ``readOnly``, ``writeOnly``) are ignored. Keywords pydantic does not generate
(``not``, ``if``/``then``, ``patternProperties``, ``dependentRequired``, ...) are not compared.

Paths in the findings follow the data, JSON-pointer style: ``/phone/number`` is the
``number`` property of the ``phone`` property, ``/recipients/[]`` the items of an array,
``/labels/{}`` the values of a map, ``/pair/[1]`` the second element of a tuple.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Schema = Mapping[str, Any]

__all__ = ["breaking_changes", "topic_index_breaking_changes"]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every way ``new`` accepts less than ``old``, one ``"<path>: <what>"`` line each."""
    return list(_Comparison(old, new).changes(old, new, ""))


def topic_index_breaking_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What a new topic index (``topics.json``) takes away: topics, carried types, key meaning."""
    findings = []
    for name, old_topic in old.items():
        new_topic = new.get(name)
        if new_topic is None:
            findings.append(f"{name}: topic removed")
            continue
        dropped = [type_ for type_ in old_topic["messages"] if type_ not in new_topic["messages"]]
        if dropped:
            findings.append(f"{name}: no longer carries {', '.join(dropped)}")
        if old_topic["key"] != new_topic["key"]:
            findings.append(
                f"{name}: key changed from {old_topic['key']!r} to {new_topic['key']!r}"
            )
    return findings


# -- single-keyword checks: each gets two resolved, non-union schemas and says what narrowed --

_Check = Callable[[Schema, Schema], Iterator[str]]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
# Keywords whose containment we cannot decide: any addition or change is a narrowing.
_OPAQUE = ("pattern", "format")
_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    type(None): "null",
    list: "array",
    dict: "object",
}


def _types(schema: Schema) -> set[str] | None:
    """The JSON types a schema allows by its ``type`` keyword, or None when it does not say."""
    declared = schema.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _accepts_type(types: set[str], json_type: str) -> bool:
    return json_type in types or (json_type == "integer" and "number" in types)


def _type_of(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return "integer"
    return _JSON_TYPES.get(type(value), "object")


def _allowed_values(schema: Schema) -> list[Any] | None:
    """The finite set of values ``const``/``enum`` allow, or None when not restricted."""
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _added(keyword: str, new: Schema) -> str:
    return f"{keyword} added ({_canonical(new[keyword])})"


def _changed(keyword: str, old: Schema, new: Schema, verb: str = "changed") -> str:
    return f"{keyword} {verb} from {_canonical(old[keyword])} to {_canonical(new[keyword])}"


def _check_type(old: Schema, new: Schema) -> Iterator[str]:
    new_types = _types(new)
    if new_types is None:
        return
    old_values = _allowed_values(old)
    if old_values is not None:
        # The old schema named its values; only those values' types must stay accepted.
        refused = [v for v in old_values if not _accepts_type(new_types, _type_of(v))]
        if refused:
            yield f"type narrowed to {_show(new_types)}: refuses {_show_values(refused)}"
        return
    old_types = _types(old)
    if old_types is None:
        yield f"type restricted to {_show(new_types)}"
        return
    lost = {t for t in old_types if not _accepts_type(new_types, t)}
    if lost:
        yield f"type narrowed from {_show(old_types)} to {_show(new_types)}"


def _check_values(old: Schema, new: Schema) -> Iterator[str]:
    new_values = _allowed_values(new)
    if new_values is None:
        return
    old_values = _allowed_values(old)
    if old_values is None:
        yield f"restricted to values {_show_values(new_values)}"
        return
    if "const" in old and "const" in new and old["const"] != new["const"]:
        yield _changed("const", old, new)
        return
    kept = {_canonical(value) for value in new_values}
    lost = [value for value in old_values if _canonical(value) not in kept]
    if lost:
        yield f"no longer accepts values {_show_values(lost)}"


def _check_bounds(old: Schema, new: Schema) -> Iterator[str]:
    for keyword in _LOWER_BOUNDS:
        yield from _bound(old, new, keyword, tighter=lambda o, n: n > o, verb="raised")
    for keyword in _UPPER_BOUNDS:
        yield from _bound(old, new, keyword, tighter=lambda o, n: n < o, verb="lowered")


def _bound(
    old: Schema, new: Schema, keyword: str, tighter: Callable[[Any, Any], bool], verb: str
) -> Iterator[str]:
    if keyword not in new:
        return
    if keyword not in old:
        yield _added(keyword, new)
    elif tighter(old[keyword], new[keyword]):
        yield _changed(keyword, old, new, verb)


def _check_opaque(old: Schema, new: Schema) -> Iterator[str]:
    for keyword in _OPAQUE:
        if keyword not in new:
            continue
        if keyword not in old:
            yield _added(keyword, new)
        elif old[keyword] != new[keyword]:
            yield _changed(keyword, old, new)


def _check_multiple_of(old: Schema, new: Schema) -> Iterator[str]:
    if "multipleOf" not in new:
        return
    if "multipleOf" not in old:
        yield _added("multipleOf", new)
        return
    # Old values are multiples of the old step; they all stay valid only if the new step
    # divides the old one.
    ratio = old["multipleOf"] / new["multipleOf"]
    if abs(ratio - round(ratio)) > 1e-9:
        yield _changed("multipleOf", old, new)


def _check_unique_items(old: Schema, new: Schema) -> Iterator[str]:
    if new.get("uniqueItems") and not old.get("uniqueItems"):
        yield "uniqueItems added"


_NODE_CHECKS: tuple[_Check, ...] = (
    _check_type,
    _check_values,
    _check_bounds,
    _check_opaque,
    _check_multiple_of,
    _check_unique_items,
)


# -- the walk: resolves references, splits unions, and recurses into objects and arrays --


class _Comparison:
    """One comparison of two schema documents; holds their roots to resolve ``$ref``."""

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self._old_root = old_root
        self._new_root = new_root
        # (old $ref, new $ref) pairs already being compared, so recursive models terminate.
        self._visiting: set[tuple[str, str]] = set()

    def changes(self, old: Any, new: Any, path: str) -> Iterator[str]:
        """Breaking changes between two (sub)schemas found at data path ``path``."""
        old_ref, new_ref = _ref_of(old), _ref_of(new)
        pair = (old_ref, new_ref) if old_ref and new_ref else None
        if pair in self._visiting:
            return  # this pair of definitions is already being compared further up
        if pair:
            self._visiting.add(pair)
        try:
            yield from self._changes(
                _resolve(self._old_root, old), _resolve(self._new_root, new), path
            )
        finally:
            if pair:
                self._visiting.discard(pair)

    def _changes(self, old: Schema | bool, new: Schema | bool, path: str) -> Iterator[str]:
        if old is False or new is True:
            return  # nothing was accepted before, or everything is accepted now
        if new is False:
            yield _at(path, "no longer accepts any value")
            return
        old, new = _as_schema(old), _as_schema(new)
        if _is_union(old) or _is_union(new):
            yield from self._union_changes(old, new, path)
            return
        for check in _NODE_CHECKS:
            for finding in check(old, new):
                yield _at(path, finding)
        yield from self._object_changes(old, new, path)
        yield from self._array_changes(old, new, path)
        yield from self._all_of_changes(old, new, path)

    def _union_changes(self, old: Schema, new: Schema, path: str) -> Iterator[str]:
        """Each old alternative must be accepted by some new alternative.

        A side that is not a union counts as a union of one. Keywords written beside a new
        ``anyOf`` constrain every alternative, so they are checked against the old schema
        too (pydantic only writes annotations there).
        """
        new_branches = _branches(new)
        for old_branch in _branches(old):
            yield from self._branch_changes(old_branch, new_branches, path)
        if _is_union(new):
            for check in _NODE_CHECKS:
                for finding in check(_without_union(old), _without_union(new)):
                    yield _at(path, finding)

    def _branch_changes(self, old_branch: Any, new_branches: list[Any], path: str) -> Iterator[str]:
        changed_versions = []
        for new_branch in new_branches:
            found = list(self.changes(old_branch, new_branch, path))
            if not found:
                return  # some new alternative accepts everything this one did
            if self._same_alternative(old_branch, new_branch):
                changed_versions.append(found)
        if changed_versions:
            # The alternative is still there, but narrowed: say how, not just "lost".
            yield from min(changed_versions, key=len)
        else:
            yield _at(path, f"lost alternative {self._describe_old(old_branch)}")

    def _same_alternative(self, old_branch: Any, new_branch: Any) -> bool:
        """Whether two alternatives are one alternative, changed, rather than two different ones."""
        old_ref, new_ref = _ref_of(old_branch), _ref_of(new_branch)
        if old_ref and new_ref:
            return old_ref.rsplit("/", 1)[-1] == new_ref.rsplit("/", 1)[-1]
        old_types = _types(self._resolved_old(old_branch))
        new_types = _types(self._resolved_new(new_branch))
        if old_types is None or new_types is None:
            return old_types == new_types
        return bool(old_types & new_types)

    def _object_changes(self, old: Schema, new: Schema, path: str) -> Iterator[str]:
        old_properties = old.get("properties", {})
        new_properties = new.get("properties", {})
        for name, old_property in old_properties.items():
            if name not in new_properties:
                yield _at(_join(path, name), "property removed")
            else:
                yield from self.changes(old_property, new_properties[name], _join(path, name))
        old_required = set(old.get("required", ()))
        for name in new.get("required", ()):
            if name in old_required:
                continue
            what = "became required" if name in old_properties else "new required property"
            yield _at(_join(path, name), what)
        yield from self._additional_changes(old, new, path)

    def _additional_changes(self, old: Schema, new: Schema, path: str) -> Iterator[str]:
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            yield _at(path, "additional properties no longer accepted")
        elif isinstance(old_extra, Mapping) or isinstance(new_extra, Mapping):
            yield from self.changes(old_extra, new_extra, path + "/{}")

    def _array_changes(self, old: Schema, new: Schema, path: str) -> Iterator[str]:
        if "items" in old or "items" in new:
            yield from self.changes(old.get("items", True), new.get("items", True), path + "/[]")
        for index, (old_item, new_item) in enumerate(
            zip(old.get("prefixItems", ()), new.get("prefixItems", ()), strict=False)
        ):
            yield from self.changes(old_item, new_item, f"{path}/[{index}]")

    def _all_of_changes(self, old: Schema, new: Schema, path: str) -> Iterator[str]:
        old_parts, new_parts = old.get("allOf", []), new.get("allOf", [])
        for index, new_part in enumerate(new_parts):
            if index < len(old_parts):
                yield from self.changes(old_parts[index], new_part, path)
            else:
                yield _at(path, f"gained constraint {_describe(_as_schema(new_part))}")

    def _describe_old(self, branch: Any) -> str:
        ref = _ref_of(branch)
        return ref.rsplit("/", 1)[-1] if ref else _describe(self._resolved_old(branch))

    def _resolved_old(self, schema: Any) -> Schema:
        return _as_schema(_resolve(self._old_root, schema))

    def _resolved_new(self, schema: Any) -> Schema:
        return _as_schema(_resolve(self._new_root, schema))


# -- helpers --

_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "readOnly",
        "writeOnly",
        "deprecated",
        "$comment",
    }
)


def _ref_of(schema: Any) -> str | None:
    return schema.get("$ref") if isinstance(schema, Mapping) else None


def _resolve(root: Schema, schema: Any) -> Schema | bool:
    """Follow ``$ref`` chains (siblings of ``$ref`` are merged in) and fold one-member ``allOf``."""
    seen: set[str] = set()
    while isinstance(schema, Mapping):
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:
                raise ValueError(f"circular $ref {ref}")
            seen.add(ref)
            siblings = {key: value for key, value in schema.items() if key != "$ref"}
            target = _pointer(root, ref)
            if target is False:
                return False
            schema = {**_as_schema(target), **siblings}
        elif len(schema.get("allOf", ())) == 1:
            siblings = {key: value for key, value in schema.items() if key != "allOf"}
            schema = {**_as_schema(_resolve(root, schema["allOf"][0])), **siblings}
        else:
            return schema
    return schema


def _pointer(root: Schema, ref: str) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"only references within the document are supported, not {ref}")
    node: Any = root
    for token in filter(None, ref[1:].split("/")):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _as_schema(schema: Schema | bool) -> Schema:
    if schema is True:
        return {}
    if schema is False:
        return {"not": {}}
    return schema


def _is_union(schema: Schema) -> bool:
    return "anyOf" in schema or "oneOf" in schema


def _branches(schema: Schema) -> list[Any]:
    """The alternatives of a schema: its ``anyOf``/``oneOf`` members, or itself."""
    if _is_union(schema):
        return [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    return [schema]


def _without_union(schema: Schema) -> Schema:
    return {key: value for key, value in schema.items() if key not in ("anyOf", "oneOf")}


def _describe(schema: Schema) -> str:
    shown = {key: value for key, value in schema.items() if key not in _ANNOTATIONS}
    if set(shown) <= {"type"} and "type" in shown:
        return _show(_types(shown) or set())
    return json.dumps(shown, sort_keys=True)


def _show(types: set[str]) -> str:
    return "|".join(sorted(types))


def _show_values(values: list[Any]) -> str:
    return ", ".join(_canonical(value) for value in values)


def _join(path: str, name: str) -> str:
    return f"{path}/{name.replace('~', '~0').replace('/', '~1')}"


def _at(path: str, finding: str) -> str:
    return f"{path or '/'}: {finding}"

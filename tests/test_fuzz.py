"""Property-based tests: whatever the YAML, the loader answers with a config or a ConfigError."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camhub import ConfigError, PluginHost, load_config_text
from provinces import BASE

HOST = PluginHost.from_installed()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _answers_cleanly(text: str) -> None:
    try:
        load_config_text(text, name="fuzz.yaml", host=HOST)
    except ConfigError as exc:
        issues = exc.issues
    else:
        return
    assert issues, "a ConfigError always carries at least one issue"
    for issue in issues:
        assert issue.file == "fuzz.yaml"
        assert issue.line >= 1
        assert issue.path.startswith("$")
        assert "\n" not in issue.message


@SETTINGS
@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    _answers_cleanly(text)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["5.1", "camera", "microphone", "hikvision", "thu", "xa-b", "$env", "$file"]),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.one_of(
                st.text(max_size=8),
                st.sampled_from(
                    ["id", "units", "devices", "vendor", "parent", "level", "include", "<<", "$env", "$file"]
                ),
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=25,
)


@SETTINGS
@given(values)
def test_any_yaml_value(value: Any) -> None:
    _answers_cleanly(yaml.safe_dump(value, allow_unicode=True))


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*path, index))
    return found


BASE_TREE = yaml.safe_load(BASE)
BASE_PATHS = _paths(BASE_TREE)


@SETTINGS
@given(st.sampled_from(BASE_PATHS), values, st.booleans())
def test_mutated_valid_province(path: tuple[Any, ...], replacement: Any, delete: bool) -> None:
    """Replace or delete one value anywhere in a valid province: still only a clean answer."""
    tree = yaml.safe_load(BASE)
    if not path:
        tree = replacement
    else:
        parent = tree
        for step in path[:-1]:
            parent = parent[step]
        if delete:
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    _answers_cleanly(yaml.safe_dump(tree, allow_unicode=True))


@SETTINGS
@given(st.integers(min_value=0, max_value=len(BASE) - 1), st.text(min_size=1, max_size=5))
def test_text_splices(position: int, junk: str) -> None:
    _answers_cleanly(BASE[:position] + junk + BASE[position:])


def test_hostile_yaml_answers_cleanly() -> None:
    """Recursive anchors, deep nesting and NUL bytes are config errors, not crashes."""
    for text in [
        "province: &a {<<: *a, id: x}",
        "province: {<<: [&b {<<: *b}]}",
        "units: &u [{id: a, <<: [*u]}]",
        "province: " + "[" * 20000 + "]" * 20000,
        "include: ['a\\0b']",
        'credentials: {x: {username: a, password: {$env: "A\\0B"}}}',
        "a: \x00",
    ]:
        try:
            load_config_text(text, name="fuzz.yaml", host=HOST)
        except ConfigError:
            continue
        raise AssertionError(f"accepted: {text!r}")

"""griffe extension for camhub's docstrings and attrs classes; used only by the docs build.

camhub's docstrings are reST in the Sphinx style. griffe's ``sphinx`` parser reads their
``:param x:`` and ``:raises X:`` fields, but leaves roles (``:class:`~camhub.plugins.PluginHost```),
directives (``.. versionadded:: 0.1.0``) and literal blocks (a paragraph ending in ``::``) in the
text, where Markdown would show them raw. :class:`RestToMarkdown` rewrites them before rendering;
``gen_ref.py`` uses :func:`rst_to_markdown` for the hooks page.

Roles become optional cross-references: a link when the target is documented on the site, plain
code otherwise, so a reference to an undocumented name never breaks a strict build.

The extension also fills two gaps of griffe's static reading:

- Sphinx takes ``#:`` comments above an assignment as its documentation; griffe does not, so
  they become docstrings.
- griffe knows dataclasses but not attrs: without help it shows no ``__init__`` for camhub's
  frozen attrs classes and warns about their ``:param x:`` fields. Each attrs class gets the
  ``__init__`` attrs generates (inherited fields first, keyword-only where attrs makes them so),
  and each field declared with ``camhub.model.setting("doc", ...)`` gets that text as its
  documentation and its real default as its value.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable
from typing import Any

import griffe

__all__ = ["RestToMarkdown", "rst_to_markdown"]

_ROLE = re.compile(r":(?:py:)?(?P<role>class|func|meth|attr|data|const|mod|exc|obj):`(?P<body>[^`]+)`")
_TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$")
_DIRECTIVE = re.compile(
    r"^(?P<indent>\s*)\.\.\s+(?P<name>versionadded|versionchanged|deprecated)::\s*(?P<version>\S+)\s*(?P<rest>.*)$"
)
_DIRECTIVE_TEXT = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}
_CALLABLE_ROLES = {"func", "meth"}


def _role(match: re.Match[str], resolve: Callable[[str], str] | None) -> str:
    role, body = match["role"], match["body"].strip()
    titled = _TITLED.match(body)
    if titled:
        title, target = titled["title"], titled["target"]
    else:
        target = body.lstrip("~")
        title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
        if role in _CALLABLE_ROLES:
            title += "()"
    if resolve is None:
        return f"`{title}`"
    identifier = resolve(target.lstrip("~"))
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def _literal_blocks(lines: list[str]) -> list[str]:
    """A paragraph ending in ``::`` introduces an indented literal block: make it a fenced one."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        if not stripped.endswith("::") or stripped.lstrip().startswith(".."):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.strip() == "::":
            pass  # a lone "::" introduces the block and shows nothing
        elif stripped.endswith(" ::"):
            out.append(stripped[:-3])
        else:
            out.append(stripped[:-1])
        i += 1
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        code = textwrap.dedent("\n".join(block)).strip("\n")
        try:
            ast.parse(code)
            language = "python"
        except SyntaxError:
            language = "text"
        pad = " " * indent
        out.append("")
        out.append(f"{pad}```{language}")
        out.extend(f"{pad}{code_line}" if code_line else "" for code_line in code.splitlines())
        out.append(f"{pad}```")
        out.append("")
    return out


def rst_to_markdown(text: str, resolve: Callable[[str], str] | None = None) -> str:
    """Rewrite the reST roles, version directives and literal blocks of ``text`` as Markdown.

    :param resolve: turns a role's target (as written) into the identifier to link to; without
        it, roles become plain code.
    """
    lines = []
    for line in text.splitlines():
        directive = _DIRECTIVE.match(line)
        if directive:
            rest = f" {directive['rest']}" if directive["rest"] else ""
            words = _DIRECTIVE_TEXT[directive["name"]]
            lines.append(f"{directive['indent']}*{words} {directive['version']}.*{rest}")
        else:
            lines.append(line)
    lines = _literal_blocks(lines)
    result = "\n".join(lines)
    return _ROLE.sub(lambda m: _role(m, resolve), result)


def _resolver(obj: griffe.Object) -> Callable[[str], str]:
    """Qualify a role target the way Sphinx would: relative to the object, then its parents."""

    def resolve(target: str) -> str:
        first = target.split(".", 1)[0]
        scope: Any = obj
        while scope is not None:
            if first in scope.members and scope.members[first] is not obj:
                return f"{scope.path}.{target}"
            scope = scope.parent
        return target

    return resolve


_ATTRS_DECORATORS = {
    "attrs.define", "attrs.frozen", "attrs.mutable", "attr.s", "attr.attrs", "attr.define",
    "attr.frozen", "attr.mutable", "attr.dataclass",
}  # fmt: skip
_FIELD_CALLS = {"attrs.field", "attr.ib", "attr.attrib", "attr.field"}
_SETTING_CALLS = {"camhub.model.setting", "camhub.model._ident"}
_FACTORY_CALLS = {"attrs.Factory", "attr.Factory"}


def _attrs_decorator(cls: griffe.Class) -> griffe.Expr | None:
    for decorator in cls.decorators:
        value = decorator.value
        if isinstance(value, griffe.Expr) and value.canonical_path in _ATTRS_DECORATORS:
            return value
    return None


def _keywords(call: griffe.ExprCall) -> dict[str, Any]:
    return {arg.name: arg.value for arg in call.arguments if isinstance(arg, griffe.ExprKeyword)}


def _literal(value: Any) -> Any:
    try:
        return ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        return None


def _called(function: str | griffe.Expr) -> str | griffe.Expr:
    """The expression ``function()``: how a factory default is shown."""
    if isinstance(function, str):
        return f"{function}()"
    return griffe.ExprCall(function=function, arguments=[])


def _attrs_field(attribute: griffe.Attribute) -> tuple[bool, str | griffe.Expr | None, str | None, bool]:
    """``(has_default, default, doc, init)`` of one attrs field, from its right-hand side."""
    value = attribute.value
    if value is None:
        return False, None, None, True
    if not isinstance(value, griffe.ExprCall):
        return True, value, None, True
    path = value.canonical_path
    if path in _FACTORY_CALLS:
        return True, _called(value.arguments[0]), None, True
    if path not in _FIELD_CALLS and path not in _SETTING_CALLS:
        return True, value, None, True
    keywords = _keywords(value)
    positional = [arg for arg in value.arguments if not isinstance(arg, griffe.ExprKeyword)]
    literal = _literal(positional[0]) if path in _SETTING_CALLS and positional else None
    doc = literal if isinstance(literal, str) else None
    init = str(keywords.get("init", "True")) != "False"
    if "factory" in keywords:
        return True, _called(keywords["factory"]), doc, init
    if "default" in keywords:
        default = keywords["default"]
        if isinstance(default, griffe.ExprCall) and default.canonical_path in _FACTORY_CALLS:
            return True, _called(default.arguments[0]), doc, init
        return True, default, doc, init
    return False, None, doc, init


def _attrs_parameters(cls: griffe.Class) -> list[griffe.Parameter]:
    """The ``__init__`` parameters of the fields ``cls`` itself declares (not inherited ones)."""
    decorator = _attrs_decorator(cls)
    kw_only = isinstance(decorator, griffe.ExprCall) and str(_keywords(decorator).get("kw_only")) == "True"
    kind = griffe.ParameterKind.keyword_only if kw_only else griffe.ParameterKind.positional_or_keyword
    parameters = []
    for member in list(cls.members.values()):
        if not isinstance(member, griffe.Attribute) or member.annotation is None:
            continue
        if "instance-attribute" not in member.labels:
            continue  # a ClassVar: griffe labels it a class attribute only
        has_default, default, doc, init = _attrs_field(member)
        if doc is not None and member.docstring is None:
            member.docstring = griffe.Docstring(doc, parent=member)
        member.value = default if has_default else None
        member.labels.discard("class-attribute")
        if init:
            parameters.append(
                griffe.Parameter(
                    member.name.lstrip("_"),
                    annotation=member.annotation,
                    kind=kind,
                    default=default if has_default else None,
                    docstring=member.docstring,
                )
            )
    return parameters


def _add_attrs_init(cls: griffe.Class, done: dict[str, list[griffe.Parameter]]) -> list[griffe.Parameter]:
    """Give an attrs class the ``__init__`` attrs generates; returns its parameters."""
    if cls.path in done:
        return done[cls.path]
    done[cls.path] = []
    if _attrs_decorator(cls) is None or "__init__" in cls.members:
        return []
    inherited: list[griffe.Parameter] = []
    for base in cls.resolved_bases:
        if isinstance(base, griffe.Class):
            inherited.extend(_add_attrs_init(base, done))
    own = _attrs_parameters(cls)
    names = {param.name for param in own}
    params = [param for param in inherited if param.name not in names] + own
    positional = [p for p in params if p.kind is not griffe.ParameterKind.keyword_only]
    keyword = [p for p in params if p.kind is griffe.ParameterKind.keyword_only]
    init = griffe.Function(
        "__init__",
        lineno=cls.lineno,
        endlineno=cls.lineno,
        parent=cls,
        parameters=griffe.Parameters(
            griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword),
            *positional,
            *keyword,
        ),
        returns="None",
    )
    cls.set_member("__init__", init)
    cls.labels.add("attrs")
    done[cls.path] = params
    return params


def _comment_docstrings(obj: griffe.Object) -> None:
    """Give an undocumented attribute the ``#:`` comment lines right above it, as Sphinx does."""
    for member in obj.members.values():
        if member.is_alias or not member.is_attribute or member.docstring is not None or not member.lineno:
            continue
        lines = member.module.lines
        comment: list[str] = []
        index = member.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        if comment:
            member.docstring = griffe.Docstring("\n".join(comment), parent=member)  # type: ignore[arg-type]


class RestToMarkdown(griffe.Extension):
    """griffe extension: attrs ``__init__`` methods, then every docstring rewritten as Markdown."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        done: dict[str, list[griffe.Parameter]] = {}
        for obj in self._containers(pkg, set()):
            _comment_docstrings(obj)
            if isinstance(obj, griffe.Class):
                _add_attrs_init(obj, done)
        self._convert(pkg, set())

    def _containers(self, obj: griffe.Object, seen: set[str]) -> list[griffe.Object]:
        """``obj`` and every module and class inside it."""
        if obj.path in seen:
            return []
        seen.add(obj.path)
        found = [obj]
        for member in obj.members.values():
            if not member.is_alias and (member.is_module or member.is_class):
                found += self._containers(member, seen)  # type: ignore[arg-type]
        return found

    def _convert(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value, _resolver(obj))
        for member in obj.members.values():
            if not member.is_alias:
                self._convert(member, seen)  # type: ignore[arg-type]

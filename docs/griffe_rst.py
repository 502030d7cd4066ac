"""Turn the reST markup left in camhub's docstrings into Markdown; used only by the docs build.

camhub's docstrings are reST in the Sphinx style. griffe's ``sphinx`` parser reads their
``:param x:`` and ``:raises X:`` fields, but leaves roles (``:class:`~camhub.plugins.PluginHost```),
directives (``.. versionadded:: 0.1.0``) and literal blocks (a paragraph ending in ``::``) in the
text, where Markdown would show them raw. :class:`RestToMarkdown` rewrites them before rendering;
``gen_ref.py`` uses :func:`rst_to_markdown` for the hooks page.

Roles become optional cross-references: a link when the target is documented on the site, plain
code otherwise, so a reference to an undocumented name never breaks a strict build.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable
from typing import Any

import griffe

__all__ = ["RestToMarkdown", "rst_to_markdown"]

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|data|const|mod|exc|obj):`(?P<body>[^`]+)`"
)
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


class RestToMarkdown(griffe.Extension):
    """griffe extension: rewrite every docstring of the loaded packages with :func:`rst_to_markdown`."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._convert(pkg, set())

    def _convert(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value, _resolver(obj))
        for member in obj.members.values():
            if not member.is_alias:
                self._convert(member, seen)  # type: ignore[arg-type]

"""Sessions: tests (core, every distribution, the kit), lint, typecheck, docs, bench.

``nox`` alone runs tests, lint, typecheck and docs: the README's test command. Every
distribution under ``vendor_adapters/`` and ``plugins/`` (and the toy adapter) is installed
against the core in this checkout and runs its own tests.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
DISTRIBUTIONS = [
    *sorted(
        p.parent
        for pattern in ("vendor_adapters/*", "plugins/*")
        for p in ROOT.glob(f"{pattern}/pyproject.toml")
    ),
    ROOT / "examples" / "toy_adapter",
]
TEST_DEPS = ["pytest>=8", "hypothesis>=6.100", "jsonschema>=4.20"]


def _with_test_extra(dist: Path) -> str:
    """``dist[test]`` when the distribution declares a ``test`` extra (its test peers, stubs)."""
    project = tomllib.loads((dist / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return f"{dist}[test]" if "test" in project.get("optional-dependencies", {}) else str(dist)


def _install_all(session: nox.Session, *extra: str) -> None:
    editable = [arg for dist in DISTRIBUTIONS for arg in ("-e", _with_test_extra(dist))]
    session.install("-e", ".[testing]", *editable, *extra)


@nox.session
def tests(session: nox.Session) -> None:
    """Core tests, then each distribution's own tests, all against this checkout's core.

    The real peers (PostgreSQL, gst-rtsp-server) come from Debian packages: as root the session
    installs what is missing; otherwise it lists it (the tests then skip, or fail under CI=true).
    """
    peers = ROOT / "scripts" / "install-test-peers.sh"
    if os.geteuid() == 0:
        session.run("bash", str(peers), external=True)
    else:
        session.run("bash", str(peers), "--check", external=True, success_codes=[0, 1])
    _install_all(session, *TEST_DEPS)
    session.run("pytest", "tests", *session.posargs)
    for dist in DISTRIBUTIONS:
        if (dist / "tests").is_dir():
            # Hypothesis loaded at start-up: its pytest plugin imports it at the session's end
            # otherwise (suites that do not use it), and pytest's rewrite of it there has met
            # CPython 3.11's AST recursion-depth bug (gh-106905: SystemError after the tests passed).
            session.run("pytest", "-p", "hypothesis", str(dist / "tests"), *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict for the core, its tests and every distribution."""
    _install_all(
        session, "mypy>=1.10", "types-PyYAML", "types-jsonschema", "types-defusedxml", "nox", *TEST_DEPS
    )
    session.run("mypy", "--strict", "src", "tests", "noxfile.py")
    for dist in DISTRIBUTIONS:
        targets = [name for name in ("src", "tests") if (dist / name).is_dir()]
        with session.chdir(dist):
            session.run("mypy", "--strict", *targets)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation, warnings as errors (generated hook and config references)."""
    _install_all(
        session,
        "mkdocs>=1.6",
        "mkdocs-material>=9.5",
        "mkdocstrings-python>=1.10",
        "mkdocs-gen-files>=0.5",
        "ruff>=0.6",
    )
    session.env.update({"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"})
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, side by side with their peers; results go to docs/benchmarks.md by hand."""
    _install_all(session, "onvif-zeep-async>=4.3,<5", "types-defusedxml")
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)

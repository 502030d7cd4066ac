"""Load a province from YAML: strict, every error located, secrets resolved, cross-checked.

Use :func:`load_config`. Every problem in the files becomes one line of a
:class:`~camhub.errors.ConfigError`, naming file, line and ``$.path``; nothing else escapes.
The format is described in the configuration reference (generated from the classes in
:mod:`camhub.model`) and, for editors, by :func:`json_schema`.
"""

from __future__ import annotations

from camhub.config._document import Document, Fragment
from camhub.config._load import load_config, load_config_text
from camhub.config._schema import json_schema

__all__ = ["Document", "Fragment", "json_schema", "load_config", "load_config_text"]

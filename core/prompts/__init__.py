"""Prompt templates: `$variables` checked when a template is loaded, not when a user hits it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

TEMPLATE_DIR = Path(__file__).parent


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class PromptTemplate:
    """A template whose variables are all known up front (seed property 20)."""

    name: str
    text: str
    variables: frozenset[str]

    @classmethod
    def parse(cls, name: str, text: str, allowed: frozenset[str]) -> PromptTemplate:
        template = Template(text)
        if not template.is_valid():
            raise TemplateError(f"template {name!r} has a malformed placeholder (use $name or ${{name}})")
        used = frozenset(template.get_identifiers())
        unknown = used - allowed
        if unknown:
            raise TemplateError(
                f"template {name!r} uses unknown variables {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        return cls(name=name, text=text, variables=used)

    def render(self, values: Mapping[str, str]) -> str:
        missing = self.variables - values.keys()
        if missing:
            raise TemplateError(f"template {self.name!r} is missing values for {sorted(missing)}")
        return Template(self.text).substitute({k: values[k] for k in self.variables})


SYSTEM_VARIABLES = frozenset({"assistant_name", "platform", "workspace", "channel", "user_name", "now"})


@cache
def load_template(name: str, allowed: frozenset[str] = SYSTEM_VARIABLES) -> PromptTemplate:
    path = TEMPLATE_DIR / f"{name}.md"
    return PromptTemplate.parse(name, path.read_text(encoding="utf-8"), allowed)

"""How a setting's rule is attached to its field, shared by settings.py and scale.py (which settings.py builds
on, so neither imports the other for these). Import-light: pydantic only."""

from collections.abc import Callable
from typing import Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError


def rule(check: Callable[[str], str | None]) -> AfterValidator:
    """Runs `check` on a non-empty value (empty means "not set": `require` says when a step needs it)."""

    def validate(value: str) -> str:
        wrong = check(value) if value else None
        if wrong:
            raise PydanticCustomError("cicd_setting", "{wrong}", {"wrong": wrong})
        return value

    return AfterValidator(validate)


_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off", ""})


def switch(value: Any) -> bool:
    """A bool from YAML (true), a flag, or an environment variable's text ("true", "false", "yes", "no", "on",
    "off", "1", "0"): read here from the text, never cast by invoke (which takes any text but "0" and "" as
    true, so INVOKE_CICD_ANONYMOUS_CREDENTIALS=false would turn the switch on)."""
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise PydanticCustomError("cicd_setting", "{wrong}", {"wrong": "is not true or false"})

"""What the catalogue and cluster YAML files share: strict keys, figures with units and sources,
and turning a pydantic ValidationError into the one line a user reads.
"""
from __future__ import annotations

import difflib
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from edgewise.hardware.units import (
    parse_bandwidth,
    parse_bytes,
    parse_flops,
    parse_power,
    parse_time,
)

Bytes = Annotated[float, BeforeValidator(parse_bytes), Field(gt=0)]
Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth), Field(gt=0)]
Seconds = Annotated[float, BeforeValidator(parse_time), Field(ge=0)]
Flops = Annotated[float, BeforeValidator(parse_flops), Field(gt=0)]
Watts = Annotated[float, BeforeValidator(parse_power), Field(ge=0)]


def close_matches(word: str, choices: list[str]) -> str:
    """' (did you mean a, b?)' when some choice is close to `word`, else ''."""
    near = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(near)}?)" if near else ""


class Spec(BaseModel):
    """A mapping read from YAML: an unknown key is an error that lists the valid ones."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = list(cls.model_fields)
            for key in data:
                if key not in valid:
                    raise ValueError(f"unknown key {key!r}{close_matches(str(key), valid)}; "
                                     f"valid keys: {', '.join(valid)}")
        return data


T = TypeVar("T")


class Figure(Spec, Generic[T]):
    """A number with where it comes from: `{value: 4 GiB, source: "..."}`, or just `4 GiB`."""
    value: T
    source: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_value(cls, data: Any) -> Any:
        return data if isinstance(data, dict) else {"value": data}


# Discriminated-union tags that pydantic puts into error locations; users never wrote them.
_HIDDEN_LOC = {"name", "inline"}


def validation_line(where: str, err: ValidationError) -> str:
    """`where: nodes.2.device.memory: expected a size such as '4 GiB' ..., got 'lots'` (first error)."""
    e = err.errors(include_url=False)[0]
    loc = [str(p) for p in e["loc"]]
    # A tagged union adds its tag after the field name (nodes.0.device.inline.memory): drop it.
    loc = [p for i, p in enumerate(loc) if not (p in _HIDDEN_LOC and i > 0 and loc[i - 1] == "device")]
    if loc and loc[-1] == "value":       # a bare figure reads `memory`, not `memory.value`
        loc = loc[:-1]
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] in ("missing",):
        msg = "missing (required)"
    elif not e["type"].startswith("value_error"):
        msg = f"{msg}, got {_short(e.get('input'))}"
    path = ".".join(loc)
    return f"{where}: {path}: {msg}" if path else f"{where}: {msg}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

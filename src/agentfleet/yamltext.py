"""Reading YAML that people write (job files' front matter, plan files): one rule for both.

YAML offers more than a job can keep, and some of it is dangerous: aliases let a 527-byte
file expand to hundreds of megabytes, dates and `!!binary` become values no JSON column
holds, duplicate keys silently keep the last. This loader refuses aliases and duplicate
keys, reads dates as the text they were written as, and leaves the rest of the value
checks to `validate`, so every problem is an error naming where it is.
"""

from __future__ import annotations

from typing import Any

import yaml


class Refused(ValueError):
    """The YAML cannot be read as a job or plan: says why, and where when it knows."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"{reason} (line {line})")
        self.reason = reason
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader without aliases, duplicate keys or implicit dates."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None,
                None,
                "YAML aliases (*name) are not allowed: write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable key: construct_mapping reports it properly
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


def _refuse_tag(loader: _Loader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"{node.tag} values cannot be kept in a job or plan", node.start_mark
    )


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    yaml.SafeLoader.construct_yaml_str,  # type: ignore[type-var]
)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def load(text: str) -> Any:
    """Parse YAML text under these rules; raises `Refused` with the reason and line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise Refused(f"bad YAML: {problem}", None if mark is None else mark.line + 1) from None
    except RecursionError:
        raise Refused("the YAML is nested too deeply") from None

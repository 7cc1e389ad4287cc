"""Outputs into inputs: a plan step's prompt, command and env may name upstream results.

    prompt: "Fix what the review found: {{ steps.review.text }}"
    cmd: "gh issue comment 7 --body {{ steps.triage.result.summary }}"

Templates are Jinja2, rendered in its sandbox (no attribute of Python objects beyond plain
data, no imports, no file access) when the step is queued, so a step sees its upstream
steps as they ended, and sees them again if it is queued again after a rework. At submit
every template is parsed and every `steps.NAME` must name a step it depends on (directly
or through others): a typo is refused then, not when the plan is half done. A missing field
(`steps.review.result.verdict` of a result without one) renders as nothing; write
`{{ steps.review.result.verdict | default('none') }}` to say what it should be.

In a shell `cmd` given as one string, every value is shell-quoted as it is put in, so an
upstream agent's text can never become shell syntax; an argv list needs no quoting.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from agentfleet.errors import InvalidArgument

TEMPLATES_KEY = "templates"  # the payload's original templates, rendered anew each time
RENDERED_KEY = "rendered"  # what the last rendering gave, to keep what was appended since
NAMES = frozenset({"steps"})
LOOP_NAME = "loop"  # in a loop's body: loop.iteration, loop.max_iterations, loop.previous
_MARKS = ("{{", "{%", "{#")


def _environment(quote: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=ChainableUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_shell_quote if quote else _plain,
    )


def _plain(value: Any) -> Any:
    return "" if value is None else value


def _shell_quote(value: Any) -> str:
    if isinstance(value, ChainableUndefined):
        return "''"
    return shlex.quote("" if value is None else str(value))


_PLAIN = _environment(quote=False)
_SHELL = _environment(quote=True)


def _is_template(text: object) -> bool:
    return isinstance(text, str) and any(mark in text for mark in _MARKS)


def templated(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload's fields that are templates: prompt, cmd (text or argv) and env values."""
    found: dict[str, Any] = {}
    if _is_template(payload.get("prompt")):
        found["prompt"] = payload["prompt"]
    cmd = payload.get("cmd")
    if _is_template(cmd) or (isinstance(cmd, list) and any(map(_is_template, cmd))):
        found["cmd"] = cmd
    env = payload.get("env")
    if isinstance(env, Mapping):
        values = {k: v for k, v in env.items() if _is_template(v)}
        if values:
            found["env"] = values
    return found


def _sources(fields: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, template text) for every template of a payload's fields."""
    if "prompt" in fields:
        yield "prompt", fields["prompt"]
    cmd = fields.get("cmd")
    if isinstance(cmd, str):
        yield "cmd", cmd
    elif isinstance(cmd, list):
        for i, item in enumerate(cmd):
            if _is_template(item):
                yield f"cmd[{i}]", item
    for key, value in (fields.get("env") or {}).items():
        yield f"env.{key}", value


def _step_names(tree: nodes.Node) -> Iterator[str]:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "steps"):
            continue
        if isinstance(node, nodes.Getattr):
            yield node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            yield str(node.arg.value)
        else:
            raise InvalidArgument("name the step: steps.NAME or steps['NAME']")


def check(
    step: str,
    payload: Mapping[str, Any],
    upstream: set[str],
    known: set[str],
    *,
    loop: bool = False,
) -> None:
    """Refuse a template that does not parse or names a step `step` does not depend on
    (`loop` too, outside a loop's body)."""
    for where, text in _sources(templated(payload)):
        label = f"step {step!r}, {where}"
        try:
            tree = _PLAIN.parse(text)
        except TemplateSyntaxError as exc:
            raise InvalidArgument(
                f"{label}: bad template (line {exc.lineno}): {exc.message}"
            ) from None
        names = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}
        assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "store"}
        allowed = NAMES | {LOOP_NAME} if loop else NAMES
        unknown = sorted(names - allowed - assigned - set(_PLAIN.globals))
        if unknown:
            inside = ", and loop.iteration and loop.previous in a loop" if not loop else ""
            raise InvalidArgument(
                f"{label}: unknown name(s) {unknown}; a template sees steps.NAME of the "
                f"steps it depends on{inside}"
            )
        try:
            referred = set(_step_names(tree))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{label}: {exc}") from None
        for name in sorted(referred):
            if name not in known:
                raise InvalidArgument(f"{label}: there is no step named {name!r}")
            if name not in upstream:
                raise InvalidArgument(
                    f"{label}: it refers to steps.{name}, which it does not depend on "
                    "(add it to depends_on, directly or through others)"
                )


def check_condition(
    step: str,
    when: str,
    upstream: set[str],
    known: set[str],
    *,
    loop: bool = False,
    field: str = "when",
) -> None:
    """Refuse a `when:` (or a loop's `until:`) that is not one expression over the steps
    `step` depends on."""
    try:
        _PLAIN.compile_expression(when)
    except TemplateSyntaxError as exc:
        raise InvalidArgument(f"step {step!r}, {field}: bad expression: {exc.message}") from None
    try:
        check(step, {"prompt": "{{ (" + when + ") }}"}, upstream, known, loop=loop)
    except InvalidArgument as exc:
        said = str(exc).replace(f"step {step!r}, prompt:", f"step {step!r}, {field}:", 1)
        raise InvalidArgument(said) from None


def condition_holds(
    when: str, steps: Mapping[str, Mapping[str, Any]], loop: Mapping[str, Any] | None = None
) -> bool:
    """Whether a step's `when:` holds over its upstream steps as they ended (a missing
    field is false, never an error)."""
    test = _PLAIN.compile_expression(when, undefined_to_none=True)
    return bool(test(steps=dict(steps), **({} if loop is None else {LOOP_NAME: dict(loop)})))


def step_view(status: str, result: Any, error: str | None) -> dict[str, Any]:
    """What a template sees of one upstream step."""
    fields: Mapping[str, Any] = result if isinstance(result, Mapping) else {}
    agent: Mapping[str, Any] = fields["agent"] if isinstance(fields.get("agent"), Mapping) else {}
    text = agent.get("text") or fields.get("text") or (result if isinstance(result, str) else "")
    return {
        "status": status,
        "ok": status == "succeeded",
        "result": result,
        "text": text,
        "exit_code": fields.get("exit_code"),
        "branch": fields.get("branch"),
        "head_commit": fields.get("head_commit"),
        "error": error,
    }


def render(
    payload: Mapping[str, Any],
    steps: Mapping[str, Mapping[str, Any]],
    loop: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload with its templates rendered against `steps` (name -> step_view) and, in
    a loop's body, `loop`. What was appended to a rendered prompt since (a reviewer's
    feedback) is kept."""
    fields = payload.get(TEMPLATES_KEY) or templated(payload)
    out = {**payload, TEMPLATES_KEY: fields}
    before = payload.get(RENDERED_KEY) or {}
    context: dict[str, Any] = {"steps": dict(steps)}
    if loop is not None:
        context[LOOP_NAME] = dict(loop)
    rendered: dict[str, Any] = {}
    if "prompt" in fields:
        text = _PLAIN.from_string(fields["prompt"]).render(context)
        current, last = str(payload.get("prompt") or ""), before.get("prompt")
        appended = current[len(last) :] if last is not None and current.startswith(last) else ""
        out["prompt"] = rendered["prompt"] = text
        out["prompt"] += appended
    cmd = fields.get("cmd")
    if isinstance(cmd, str):
        out["cmd"] = _SHELL.from_string(cmd).render(context)
    elif isinstance(cmd, list):
        out["cmd"] = [_render_item(item, context) for item in cmd]
    if fields.get("env"):
        env = dict(payload.get("env") or {})
        for key, value in fields["env"].items():
            env[key] = _PLAIN.from_string(value).render(context)
        out["env"] = env
    out[RENDERED_KEY] = rendered
    return out


def _render_item(item: Any, context: Mapping[str, Any]) -> Any:
    return _PLAIN.from_string(item).render(context) if _is_template(item) else item


def needs_rendering(payload: Mapping[str, Any]) -> bool:
    return bool(payload.get(TEMPLATES_KEY))


__all__: Sequence[str] = [
    "check", "check_condition", "condition_holds", "needs_rendering", "render", "step_view",
    "templated",
]  # fmt: skip

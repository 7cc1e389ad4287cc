"""Lay a plan's DAG out in columns for a server-rendered SVG (no JavaScript needed).

Each job sits in the column after its deepest dependency, then moves right next to its
earliest dependent; within a column, jobs are ordered by where their dependencies sit (one
barycentre pass) so edges cross less.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentfleet.plans.loops import loop_note
from agentfleet.plans.model import APPROVAL_ENGINE, Plan, PlanStatus

NODE_W = 188
NODE_H = 58
GAP_X = 56
GAP_Y = 16
PAD = 12
NAME_CHARS = 22


@dataclass(frozen=True)
class Node:
    name: str
    label: str
    job_id: int
    status: str
    engine: str
    note: str  # second line: status, or what a gate waits for
    x: int
    y: int
    gate: bool
    waiting_here: bool  # the checkpoint the plan is paused at


@dataclass(frozen=True)
class Edge:
    d: str
    done: bool


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    node_w: int = NODE_W
    node_h: int = NODE_H


def layout(plan: Plan) -> Layout:
    steps = {s.name: s for s in plan.jobs}
    depth: dict[str, int] = {}

    def column(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            deps = [d for d in steps[name].depends_on if d in steps and d not in seen]
            depth[name] = 1 + max((column(d, seen | {name}) for d in deps), default=-1)
        return depth[name]

    for name in steps:
        column(name)
    # Pull each job right, next to its earliest dependent, so edges skip fewer columns.
    children: dict[str, list[str]] = {n: [] for n in steps}
    for name, step in steps.items():
        for dep in step.depends_on:
            if dep in children:
                children[dep].append(name)
    for name in sorted(steps, key=lambda n: depth[n], reverse=True):
        if children[name]:
            depth[name] = min(depth[c] for c in children[name]) - 1
    columns: dict[int, list[str]] = {}
    for name in steps:  # submission order within a column to start with
        columns.setdefault(depth[name], []).append(name)
    row: dict[str, float] = {}
    for c in sorted(columns):
        names = columns[c]
        if c > 0:
            names.sort(
                key=lambda n: (
                    sum(row[d] for d in steps[n].depends_on if d in row)
                    / max(1, len([d for d in steps[n].depends_on if d in row]))
                )
            )
        for i, name in enumerate(names):
            row[name] = i
    tallest = max((len(v) for v in columns.values()), default=1)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    width = PAD * 2 + len(columns) * NODE_W + max(0, len(columns) - 1) * GAP_X

    positions: dict[str, tuple[int, int]] = {}
    for c, names in columns.items():
        used = len(names) * NODE_H + (len(names) - 1) * GAP_Y
        top = PAD + (height - 2 * PAD - used) // 2
        for i, name in enumerate(names):
            positions[name] = (PAD + c * (NODE_W + GAP_X), top + i * (NODE_H + GAP_Y))

    paused = plan.status is PlanStatus.PAUSED
    nodes = []
    for name, step in steps.items():
        x, y = positions[name]
        gate = step.engine == APPROVAL_ENGINE
        here = paused and plan.checkpoint == name
        if here:
            note = "awaiting approval"
        elif gate and step.status.value == "waiting":
            note = "approval gate"
        elif gate and step.status.value == "succeeded":
            note = "approved"
        else:
            note = step.status.value
            if step.attempts > 1:
                note += f" · attempt {step.attempts}"
        if step.trigger_rule != "all_success":
            note += f" · {step.trigger_rule}"
        if step.when:
            note += f" · when {step.when}"
        if step.loop is not None and step.loop.get("name") == name:
            note += f" · {loop_note(step.loop)}"
        if step.limit:
            note += f" · limit {step.limit}"
        label = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
        nodes.append(
            Node(name, label, step.job_id, step.status.value, step.engine, note, x, y, gate, here)
        )
    edges = []
    for name, step in steps.items():
        x2, y2 = positions[name]
        for dep in step.depends_on:
            if dep not in positions:
                continue
            x1, y1 = positions[dep]
            sx, sy = x1 + NODE_W, y1 + NODE_H // 2
            ex, ey = x2, y2 + NODE_H // 2
            mid = (sx + ex) // 2
            d = f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex - 6},{ey}"
            edges.append(Edge(d, steps[dep].status.value == "succeeded"))
    return Layout(width, height, tuple(nodes), tuple(edges))

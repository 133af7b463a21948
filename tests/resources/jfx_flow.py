"""Pipelines with control flow (If, ForEach, ExitHandler, Collected), for every runner's tests.

Module-level components, so that worker processes (Beam, Kubeflow pods) import them.
"""

from __future__ import annotations

from jfx import (
    Collected,
    ExitHandler,
    ForEach,
    If,
    Input,
    Output,
    Parameter,
    Pipeline,
    RuntimeParameter,
    component,
    current_context,
)
from jfx.types import Metrics


@component
def number(out: Output[Metrics], value: Parameter[int] = 1):
    out.properties["value"] = value
    out.write_json(value)


@component
def scale(x: Input[Metrics], out: Output[Metrics], factor: Parameter[int] = 1):
    value = x.properties["value"] * factor
    out.properties["value"] = value
    out.write_json(value)


@component
def total(parts: Input[list[Metrics]], out: Output[Metrics]):
    values = [p.properties["value"] for p in parts]
    out.properties["value"] = sum(values)
    out.properties["count"] = len(values)
    out.properties["values"] = values
    out.write_json(values)


@component
def judge(x: Input[Metrics], verdict: Output[Metrics], threshold: Parameter[int] = 10):
    verdict.properties["passed"] = x.properties["value"] >= threshold
    verdict.write_json(verdict.properties["passed"])


@component
def publish(x: Input[Metrics], out: Output[Metrics]):
    out.properties["value"] = x.properties["value"]
    out.write_json(x.properties["value"])


@component
def explode(x: Input[Metrics], out: Output[Metrics], fail: Parameter[bool] = False):
    if fail:
        raise RuntimeError("explode was told to fail")
    out.properties["value"] = x.properties["value"]
    out.write_json(x.properties["value"])


@component
def report(out: Output[Metrics]):
    states = current_context().upstream_states
    out.properties["states"] = dict(sorted(states.items()))
    out.write_json(states)


def fan_out(name: str = "flow-fan", root=None, url=None) -> Pipeline:
    """number(2) -> ForEach factor in [1, 2, 3]: scale -> total(Collected) -> judge -> If passed: publish."""
    base = number(value=2)
    with ForEach([{"factor": 1}, {"factor": 2}, {"factor": 3}]) as item:
        scaled = scale(x=base.outputs["out"], factor=item["factor"])
    tot = total(parts=Collected(scaled.outputs["out"]))
    verdict = judge(x=tot.outputs["out"], threshold=RuntimeParameter("threshold", int, default=10))
    with If(verdict.outputs["verdict"].passed):
        pub = publish(x=tot.outputs["out"])
    return Pipeline(name, [base, scaled, tot, verdict, pub], pipeline_root=root, metadata_url=url)


def gated(name: str = "flow-gate", root=None, url=None) -> Pipeline:
    """number -> If param push: publish -> scale(after publish); else-branch via ~push: explode."""
    push = RuntimeParameter("push", bool, default=True)
    base = number(value=5)
    with If(push == True):  # noqa: E712 - builds a condition
        pub = publish(x=base.outputs["out"])
        after = scale(x=pub.outputs["out"], factor=10).with_id("scaled")
    with If(~push):
        other = explode(x=base.outputs["out"]).with_id("other")
    return Pipeline(name, [base, pub, after, other], pipeline_root=root, metadata_url=url)


def exit_handled(name: str = "flow-exit", root=None, url=None) -> Pipeline:
    """ExitHandler(report) around number -> explode(fail=param) -> publish."""
    fail = RuntimeParameter("fail", bool, default=True)
    notify = report()
    with ExitHandler(notify):
        base = number(value=3)
        boom = explode(x=base.outputs["out"], fail=fail)
        pub = publish(x=boom.outputs["out"])
    return Pipeline(name, [notify, base, boom, pub], pipeline_root=root, metadata_url=url)


@component
def chatty(out: Output[Metrics], text: Parameter[str] = "hello", fail: Parameter[bool] = False):
    """Print, log and write ``text``.

    Args:
        text: what it prints and logs.
        fail: raise after printing.
    """
    import logging
    import sys

    print(f"printed {text}")
    print(f"to stderr {text}", file=sys.stderr)
    logging.getLogger("jfx_flow").warning("logged %s", text)
    if fail:
        raise ValueError(f"chatty {text} failed")
    out.properties["value"] = len(text)
    out.write_json(text)


def two_chains(root=None, url=None, name: str = "sel") -> Pipeline:
    """a -> b -> c -> d and a -> e, beside an unconnected x -> y (partial-run selection)."""
    a = number(value=1).with_id("a")
    b = scale(x=a.outputs["out"], factor=2).with_id("b")
    c = scale(x=b.outputs["out"], factor=3).with_id("c")
    d = scale(x=c.outputs["out"], factor=5).with_id("d")
    e = scale(x=a.outputs["out"], factor=7).with_id("e")
    x = number(value=11).with_id("x")
    y = scale(x=x.outputs["out"], factor=13).with_id("y")
    return Pipeline(name, [a, b, c, d, e, x, y], pipeline_root=root, metadata_url=url)


@component
def listing(out: Output[Metrics], items: Parameter[str] = "[1, 2, 3]"):
    """Publish ``items`` (JSON text) as the ``items`` property: a list decided when the pipeline runs."""
    import json

    out.properties["items"] = json.loads(items)
    out.write_json(out.properties["items"])


@component
def picky(x: Input[Metrics], out: Output[Metrics], refuse_if: Parameter[str] = ""):
    """Pass ``x`` on, unless the file ``refuse_if`` exists and ``x``'s value is 2."""
    import os

    if refuse_if and os.path.exists(refuse_if) and x.properties["value"] == 2:
        raise RuntimeError(f"picky refuses 2 while {refuse_if} exists")
    out.properties["value"] = x.properties["value"]
    out.write_json(x.properties["value"])


def dynamic_fan_out(name: str = "flow-dyn", root=None, url=None, refuse_if: str = "") -> Pipeline:
    """listing(items=param) -> ForEach over its items: number(value=item["n"]) -> picky -> scale -> total(Collected)."""
    made = listing(items=RuntimeParameter("items", str, default='[{"n": 1}, {"n": 2}, {"n": 3}]'))
    with ForEach(made.outputs["out"].items) as item:
        base = number(value=item["n"])
        checked = picky(x=base.outputs["out"], refuse_if=refuse_if)
        scaled = scale(x=checked.outputs["out"], factor=10)
    tot = total(parts=Collected(scaled.outputs["out"]))
    return Pipeline(name, [made, base, checked, scaled, tot], pipeline_root=root, metadata_url=url)


@component
def rendezvous(out: Output[Metrics], n: Parameter[int] = 0, folder: Parameter[str] = "", parties: Parameter[int] = 1):
    """Arrive in ``folder`` and wait (10 s at most) until ``parties`` nodes arrived: passes only when they run at once."""
    import time
    from pathlib import Path

    Path(folder, f"{n}.arrived").write_text("")
    deadline = time.monotonic() + 10
    while len(list(Path(folder).glob("*.arrived"))) < parties:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(list(Path(folder).glob('*.arrived')))} of {parties} arrived")
        time.sleep(0.02)
    out.properties["value"] = n
    out.write_json(n)


def dynamic_rendezvous(folder: str, name: str = "flow-meet", root=None, url=None) -> Pipeline:
    """listing(items) -> ForEach: rendezvous(n=item, parties=len(items)) -> total(Collected)."""
    made = listing(items=RuntimeParameter("items", str, default="[0, 1, 2]"))
    with ForEach(made.outputs["out"].items) as item:
        met = rendezvous(n=item, folder=folder, parties=3)
    tot = total(parts=Collected(met.outputs["out"]))
    return Pipeline(name, [made, met, tot], pipeline_root=root, metadata_url=url)

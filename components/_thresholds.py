"""Evaluator thresholds: absolute bounds on a metric, and change against a baseline.

A bound checks the metric's value, or with ``"on"`` an end of its confidence interval
(``eval_config["confidence_intervals"]``): ``"interval"`` checks ``lower_bound`` against
the interval's lower end and ``upper_bound`` against its upper end, so the whole
interval must lie within the bounds ("the lower end of the 95% interval of accuracy is
at least 0.9": ``{"accuracy": {"lower_bound": 0.9, "on": "interval"}}``); ``"ci_lower"``
and ``"ci_upper"`` check both bounds against that end. A change threshold always compares
values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jfx.errors import InvalidArgumentError, unknown_keys_message

__all__ = ["LOWER_IS_BETTER", "ON", "Threshold", "check_thresholds"]

LOWER_IS_BETTER = frozenset({"log_loss", "mse", "rmse", "mae"})
ON = ("value", "interval", "ci_lower", "ci_upper")
_KEYS = ("lower_bound", "upper_bound", "change", "on")


@dataclass(frozen=True)
class Threshold:
    """Bounds on one overall metric and/or a tolerated change against the baseline."""

    metric: str
    lower_bound: float | None = None
    upper_bound: float | None = None
    change: bool = False
    higher_is_better: bool = True
    absolute: float | None = None
    relative: float | None = None
    on: str = "value"

    @classmethod
    def parse(cls, metric: str, spec: Any) -> Threshold:
        where = f"eval_config['thresholds'][{metric!r}]"
        if not isinstance(spec, Mapping):
            raise InvalidArgumentError(f"{where} must be a dict like {{'lower_bound': 0.9}}, got {spec!r}")
        unknown = sorted(set(spec) - set(_KEYS))
        if unknown:
            raise InvalidArgumentError(unknown_keys_message(where, unknown, _KEYS))
        on = spec.get("on", "value")
        if on not in ON:
            raise InvalidArgumentError(f"{where}['on'] is {on!r}; expected one of {list(ON)}")
        change = spec.get("change")
        kwargs: dict[str, Any] = {}
        if change is not None:
            if not isinstance(change, Mapping) or set(change) - {"higher_is_better", "absolute", "relative"}:
                raise InvalidArgumentError(
                    f"{where}['change'] must be a dict with higher_is_better, absolute, relative; got {change!r}")
            kwargs = {"change": True,
                      "higher_is_better": bool(change.get("higher_is_better", metric not in LOWER_IS_BETTER)),
                      "absolute": _opt_float(change.get("absolute"), f"{where}['change']['absolute']"),
                      "relative": _opt_float(change.get("relative"), f"{where}['change']['relative']")}
            if kwargs["absolute"] is None and kwargs["relative"] is None:
                kwargs["absolute"] = 0.0
        out = cls(metric, _opt_float(spec.get("lower_bound"), f"{where}['lower_bound']"),
                  _opt_float(spec.get("upper_bound"), f"{where}['upper_bound']"), on=on, **kwargs)
        if out.lower_bound is None and out.upper_bound is None and not out.change:
            raise InvalidArgumentError(f"{where} sets no bound and no change; give lower_bound, upper_bound or change")
        return out


def _opt_float(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{where} must be a number, got {value!r}")
    return float(value)


def _lookup(metrics: Mapping[str, Any], name: str) -> Any:
    if name in metrics:
        return metrics[name]
    node: Any = metrics
    for part in name.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(name)
        node = node[part]
    return node


def _scalar_names(metrics: Mapping[str, Any], prefix: str = "") -> list[str]:
    names = []
    for k, v in metrics.items():
        if isinstance(v, Mapping):
            names += _scalar_names(v, f"{prefix}{k}/")
        elif (isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None:
            names.append(prefix + k)
    return names


def _checked_end(t: Threshold, kind: str) -> str | None:
    """Which end of the interval a bound checks (``None``: the value)."""
    if t.on == "value":
        return None
    if t.on == "interval":
        return "lower" if kind == "lower_bound" else "upper"
    return "lower" if t.on == "ci_lower" else "upper"


def check_thresholds(thresholds: Sequence[Threshold], candidate: Mapping[str, Any],
                     baseline: Mapping[str, Any] | None,
                     intervals: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Check thresholds on the overall slice's metrics.

    Args:
        intervals: the candidate's confidence intervals, metric name (``/``-joined) →
            ``{"lower", "upper", "std_error"}`` or ``None``; needed by bounds ``on`` an
            interval.

    Returns:
        One check per bound: ``{"metric", "kind" (lower_bound, upper_bound, change),
        "on" (value, or the interval's lower / upper end), "passed" (True, False, or
        None when skipped), "value" (what was checked), "baseline", "bound", "reason"}``.
        A metric (or interval) that could not be computed (e.g. AUC with one class)
        fails its bounds.

    Raises:
        InvalidArgumentError: a threshold names a metric the evaluation does not have.
    """
    checks = []
    for t in thresholds:
        try:
            value = _lookup(candidate, t.metric)
        except KeyError:
            raise InvalidArgumentError(
                f"eval_config['thresholds'] names metric {t.metric!r}, which this evaluation does not compute; "
                f"metrics: {_scalar_names(candidate)}") from None
        for kind, bound in (("lower_bound", t.lower_bound), ("upper_bound", t.upper_bound)):
            if bound is None:
                continue
            end = _checked_end(t, kind)
            checked, what = value, t.metric
            if end is not None:
                interval = (intervals or {}).get(t.metric)
                checked = interval[end] if interval else None
                what = f"{t.metric} (the {end} end of its confidence interval)"
            if checked is None:
                passed, reason = False, f"{what} could not be computed (no value), so {kind} {bound:g} fails"
            else:
                passed = checked >= bound if kind == "lower_bound" else checked <= bound
                op = (">=" if passed else "<") if kind == "lower_bound" else ("<=" if passed else ">")
                reason = f"{what} {checked:.6g} {op} {kind.replace('_', ' ')} {bound:g}: {'passed' if passed else 'FAILED'}"
            checks.append({"metric": t.metric, "kind": kind, "on": "value" if end is None else f"ci_{end}",
                           "passed": passed, "value": checked, "bound": bound, "baseline": None, "reason": reason})
        if not t.change:
            continue
        check = {"metric": t.metric, "kind": "change", "value": value, "higher_is_better": t.higher_is_better,
                 "absolute": t.absolute, "relative": t.relative}
        base = None
        if baseline is not None:
            try:
                base = _lookup(baseline, t.metric)
            except KeyError:
                base = None
        if baseline is None:
            checks.append({**check, "passed": None, "baseline": None,
                           "reason": f"{t.metric}: change threshold skipped: no baseline model"})
            continue
        if value is None or base is None:
            checks.append({**check, "passed": False, "baseline": base,
                           "reason": f"{t.metric}: change threshold FAILED: the metric has no value for the "
                                     f"{'candidate' if value is None else 'baseline'}"})
            continue
        worse = (base - value) if t.higher_is_better else (value - base)
        relative = worse / abs(base) if base != 0 else (0.0 if worse <= 0 else math.inf)
        failures = []
        if t.absolute is not None and worse > t.absolute:
            failures.append(f"worse by {worse:.6g} > absolute tolerance {t.absolute:g}")
        if t.relative is not None and relative > t.relative:
            failures.append(f"worse by {relative:.4%} of the baseline > relative tolerance {t.relative:g}")
        direction = "higher" if t.higher_is_better else "lower"
        summary = f"{t.metric} {value:.6g} vs baseline {base:.6g} ({direction} is better)"
        checks.append({**check, "passed": not failures, "baseline": base,
                       "reason": f"{summary}: {'FAILED: ' + '; '.join(failures) if failures else 'passed'}"})
    return checks

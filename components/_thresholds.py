"""Evaluator thresholds: absolute bounds on a metric, and change against a baseline."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jfx.errors import InvalidArgumentError

__all__ = ["LOWER_IS_BETTER", "Threshold", "check_thresholds"]

LOWER_IS_BETTER = frozenset({"log_loss", "mse", "rmse", "mae"})


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

    @classmethod
    def parse(cls, metric: str, spec: Any) -> Threshold:
        where = f"eval_config['thresholds'][{metric!r}]"
        if not isinstance(spec, Mapping):
            raise InvalidArgumentError(f"{where} must be a dict like {{'lower_bound': 0.9}}, got {spec!r}")
        unknown = set(spec) - {"lower_bound", "upper_bound", "change"}
        if unknown:
            raise InvalidArgumentError(f"{where} has unknown keys {sorted(unknown)}; "
                                       "expected lower_bound, upper_bound, change")
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
                  _opt_float(spec.get("upper_bound"), f"{where}['upper_bound']"), **kwargs)
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


def check_thresholds(thresholds: Sequence[Threshold], candidate: Mapping[str, Any],
                     baseline: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Check thresholds on the overall slice's metrics.

    Returns:
        One check per bound: ``{"metric", "kind" (lower_bound, upper_bound, change),
        "passed" (True, False, or None when skipped), "value", "baseline", "bound",
        "reason"}``. A metric that could not be computed (e.g. AUC with one class)
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
            if value is None:
                passed, reason = False, f"{t.metric} could not be computed (no value), so {kind} {bound:g} fails"
            else:
                passed = value >= bound if kind == "lower_bound" else value <= bound
                op = (">=" if passed else "<") if kind == "lower_bound" else ("<=" if passed else ">")
                reason = f"{t.metric} {value:.6g} {op} {kind.replace('_', ' ')} {bound:g}: {'passed' if passed else 'FAILED'}"
            checks.append({"metric": t.metric, "kind": kind, "passed": passed, "value": value, "bound": bound,
                           "baseline": None, "reason": reason})
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

"""A serialized StableHLO function, run again as JAX operations.

A jfx model artifact holds a ``jax.export`` function: StableHLO with a symbolic batch
dimension, and no Python. Converters to other formats (jax2onnx for ONNX) work on JAX
programs, not on StableHLO, so :func:`as_jax_function` reads the StableHLO module with
the MLIR bindings that ship with jaxlib and evaluates it operation by operation with
``jax.lax``: traced (``jax.make_jaxpr``, a converter), it yields one JAX program of the
same operations, the batch dimension still symbolic.

Shape arithmetic (``get_dimension_size`` and what is computed from it) and constants are
evaluated on the host with NumPy, so the traced program keeps only the tensor work; a
model's weights become constants of the program.

Only the operations that models and transforms use are covered (elementwise arithmetic,
comparisons, broadcasts, reshapes, ``dot_general``, reductions, argmax, gather, slices,
calls); any other raises :class:`UnsupportedOperationError` naming it and where it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jfx.errors import InvalidArgumentError

__all__ = ["UnsupportedOperationError", "as_jax_function"]


class UnsupportedOperationError(InvalidArgumentError):
    """The model uses an operation the conversion does not cover."""


_ELEMENT_TYPES = {
    "f32": np.float32, "f16": np.float16, "f64": np.float64, "bf16": jnp.bfloat16,
    "i1": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "ui8": np.uint8, "ui16": np.uint16, "ui32": np.uint32, "ui64": np.uint64,
}

# elementwise operations: (NumPy on host values, lax on traced ones)
_UNARY: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "negate": (np.negative, lax.neg),
    "abs": (np.abs, lax.abs),
    "exponential": (np.exp, lax.exp),
    "exponential_minus_one": (np.expm1, lax.expm1),
    "log": (np.log, lax.log),
    "log_plus_one": (np.log1p, lax.log1p),
    "logistic": (lambda x: 1 / (1 + np.exp(-x)), lax.logistic),
    "tanh": (np.tanh, lax.tanh),
    "sqrt": (np.sqrt, lax.sqrt),
    "rsqrt": (lambda x: 1 / np.sqrt(x), lax.rsqrt),
    "sign": (np.sign, lax.sign),
    "floor": (np.floor, lax.floor),
    "ceil": (np.ceil, lax.ceil),
    "round_nearest_even": (np.round, lambda x: lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN)),
    "round_nearest_afz": (lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5), lax.round),
    "is_finite": (np.isfinite, lax.is_finite),
    "not": (lambda x: np.logical_not(x) if x.dtype == np.bool_ else np.invert(x), lax.bitwise_not),
    "sine": (np.sin, lax.sin),
    "cosine": (np.cos, lax.cos),
}
_BINARY: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "add": (np.add, lax.add),
    "subtract": (np.subtract, lax.sub),
    "multiply": (np.multiply, lax.mul),
    "divide": (lambda a, b: a // b if a.dtype.kind in "iuO" else a / b, lax.div),
    "remainder": (np.fmod, lax.rem),
    "maximum": (np.maximum, lax.max),
    "minimum": (np.minimum, lax.min),
    "power": (np.power, lax.pow),
    "atan2": (np.arctan2, lax.atan2),
    "and": (lambda a, b: a & b, lax.bitwise_and),
    "or": (lambda a, b: a | b, lax.bitwise_or),
    "xor": (lambda a, b: a ^ b, lax.bitwise_xor),
}
_COMPARE: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "EQ": (np.equal, lax.eq), "NE": (np.not_equal, lax.ne), "LT": (np.less, lax.lt),
    "LE": (np.less_equal, lax.le), "GT": (np.greater, lax.gt), "GE": (np.greater_equal, lax.ge),
}
# reductions whose body is one of these operations
_REDUCERS: dict[str, Callable[..., Any]] = {"add": jnp.sum, "multiply": jnp.prod, "maximum": jnp.max, "minimum": jnp.min,
             "and": jnp.all, "or": jnp.any}
_IDENTITY = {"add": 0, "multiply": 1, "and": True, "or": False}


def _ir() -> Any:
    from jax._src.interpreters import mlir
    from jax._src.lib.mlir import ir

    return ir, mlir


class _Bcast:
    """A broadcast to a shape with a symbolic dimension, kept compact: ``value`` has the
    target's rank with size-1 dimensions where it is broadcast. Elementwise operations
    broadcast it implicitly (ONNX's own broadcasting); anything else gets it expanded."""

    __slots__ = ("shape", "value")

    def __init__(self, value: Any, shape: tuple[Any, ...]):
        self.value = value
        self.shape = shape

    def full(self) -> Any:
        return lax.broadcast_in_dim(_traced(self.value), self.shape, tuple(range(len(self.shape))))


def _full(value: Any) -> Any:
    return value.full() if isinstance(value, _Bcast) else value


def _symbolic(shape: Sequence[Any]) -> bool:
    return any(not isinstance(d, (int, np.integer)) for d in shape)


def _is_host(value: Any) -> bool:
    return isinstance(value, np.ndarray)


def _traced(value: Any, dtype: Any = None) -> Any:
    """A host value as a JAX value (symbolic dimensions become values)."""
    if not _is_host(value):
        return value
    if value.dtype == object:
        as_value = jax.core.dimension_as_value  # type: ignore[attr-defined]  # defined at run time
        flat = [jnp.asarray(as_value(d), dtype=dtype) for d in value.reshape(-1)]
        out = jnp.stack(flat).reshape(value.shape) if flat else jnp.zeros(value.shape, dtype)
        return out
    return jnp.asarray(value if dtype is None else value.astype(dtype))


def _dims(value: Any, where: str) -> tuple[Any, ...]:
    """A shape operand (computed on the host) as a tuple of ints and symbolic dimensions."""
    if not _is_host(value):
        raise UnsupportedOperationError(f"{where}: the shape depends on the data, not only on the batch size")
    return tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in value.reshape(-1).tolist())


def _host_cast(value: np.ndarray, dtype: Any) -> np.ndarray:
    if value.dtype == object and np.dtype(dtype).kind in "iu":
        return value  # symbolic dimensions stay symbolic
    if value.dtype == object:
        raise UnsupportedOperationError("a batch-size dependent value is converted to a non-integer type")
    return value.astype(dtype)


class _Module:
    def __init__(self, text: str):
        ir, mlir = _ir()
        self._ir = ir
        self._ctx = mlir.make_ir_context()
        self.module = ir.Module.parse(text, context=self._ctx)
        self.funcs = {}
        for op in self.module.body.operations:
            op = op.operation
            if op.name == "func.func":
                self.funcs[ir.StringAttr(op.attributes["sym_name"]).value] = op

    # ------------------------------------------------------------------ attributes

    def _attr(self, op: Any, name: str) -> Any:
        return op.attributes[name] if name in op.attributes else None  # noqa: SIM401 - MLIR's mapping has no get

    def _ints(self, op: Any, name: str) -> list[int]:
        attr = self._attr(op, name)
        if attr is None:
            return []
        ir = self._ir
        for kind in (ir.DenseI64ArrayAttr, ir.DenseI32ArrayAttr):
            try:
                return [int(x) for x in kind(attr)]
            except (TypeError, ValueError):
                continue
        return [int(x) for x in np.array(ir.DenseIntElementsAttr(attr)).reshape(-1)]

    def _int(self, op: Any, name: str) -> int:
        return int(self._ir.IntegerAttr(self._attr(op, name)).value)

    def _result_type(self, value: Any) -> tuple[tuple[Any, ...], Any]:
        ir = self._ir
        t = ir.RankedTensorType(value.type)
        shape = tuple(None if ir.ShapedType.is_dynamic_size(d) else int(d) for d in t.shape)
        name = str(t.element_type)
        if name not in _ELEMENT_TYPES:
            raise UnsupportedOperationError(f"element type {name} is not supported")
        return shape, np.dtype(_ELEMENT_TYPES[name])

    def _constant(self, op: Any) -> np.ndarray:
        ir = self._ir
        shape, dtype = self._result_type(op.results[0])
        attr = ir.DenseElementsAttr(self._attr(op, "value"))
        if dtype == np.bool_:
            values = [bool(ir.BoolAttr(attr[i]).value) if not attr.is_splat else None for i in range(0 if attr.is_splat else len(attr))]
            if attr.is_splat:
                return np.full(shape, bool(ir.BoolAttr(attr.get_splat_value()).value), np.bool_)
            return np.array(values, np.bool_).reshape(shape)
        if attr.is_splat:
            v = attr.get_splat_value()
            scalar = ir.FloatAttr(v).value if dtype.kind == "f" or dtype == jnp.bfloat16 else ir.IntegerAttr(v).value
            return np.full(shape, scalar, dtype)
        return np.array(attr).astype(dtype).reshape(shape)

    # ------------------------------------------------------------------ evaluation

    def call(self, name: str, args: Sequence[Any]) -> list[Any]:
        func = self.funcs.get(name)
        if func is None:
            raise UnsupportedOperationError(f"the module calls @{name}, which it does not define")
        block = func.regions[0].blocks[0]
        return self.run_block(block, args, name)

    def run_block(self, block: Any, args: Sequence[Any], where: str,
                  outer: dict[Any, Any] | None = None) -> list[Any]:
        # a region (a case's branch) sees the values of the block around it
        env: dict[Any, Any] = dict(outer) if outer else {}
        for a, v in zip(block.arguments, args, strict=True):
            env[a] = v
        for op in block.operations:
            op = op.operation
            name = op.name
            if name in ("func.return", "stablehlo.return"):
                return [env[v] for v in op.operands]
            outs = self._op(op, [env[v] for v in op.operands], where, env)
            for r, v in zip(op.results, outs, strict=True):
                env[r] = v
        raise UnsupportedOperationError(f"@{where} has no return")

    def _op(self, op: Any, xs: list[Any], where: str, env: dict[Any, Any]) -> list[Any]:
        name = op.name
        short = name.split(".", 1)[1] if name.startswith("stablehlo.") else None
        here = f"{name} in @{where}"
        if name == "func.call":
            callee = self._ir.FlatSymbolRefAttr(self._attr(op, "callee")).value
            return self.call(callee, xs)
        if short is None:
            raise UnsupportedOperationError(f"operation {here} is not supported by the ONNX conversion")
        if short == "constant":
            return [self._constant(op)]
        if short == "custom_call":
            target = self._ir.StringAttr(self._attr(op, "call_target_name")).value
            if target == "shape_assertion":
                return []  # checks on the input shapes; the ONNX model's shapes are declared
            raise UnsupportedOperationError(f"custom call {target!r} ({here}) is not supported by the ONNX conversion")
        if short in ("optimization_barrier",):
            return list(xs)
        results = [self._result_type(r) for r in op.results]
        if any(isinstance(x, _Bcast) for x in xs):
            lazy = self._lazy_elementwise(short, op, xs, results)
            if lazy is not None:
                return [lazy]
            xs = [_full(x) for x in xs]
        if short in _UNARY:
            (x,) = xs
            host, dev = _UNARY[short]
            return [host(x).astype(results[0][1]) if _is_host(x) and x.dtype != object else dev(_traced(x))]
        if short in _BINARY:
            a, b = xs
            host, dev = _BINARY[short]
            if _is_host(a) and _is_host(b):
                out = host(a, b)
                return [out if out.dtype == object else np.asarray(out).astype(results[0][1])]
            dtype = results[0][1]
            return [dev(_traced(a, dtype), _traced(b, dtype))]
        if short == "compare":
            from jaxlib.mlir.dialects import stablehlo as hlo

            direction = hlo.ComparisonDirectionAttr(self._attr(op, "comparison_direction")).value
            a, b = xs
            host, dev = _COMPARE[direction]
            if _is_host(a) and _is_host(b) and a.dtype != object and b.dtype != object:
                return [np.asarray(host(a, b))]
            if _is_host(a) and _is_host(b):
                try:
                    return [np.asarray(host(a, b)).astype(np.bool_)]
                except Exception:  # noqa: BLE001 - symbolic dimensions that cannot be compared statically
                    pass
            dtype = a.dtype if not _is_host(a) else b.dtype if not _is_host(b) else np.int32
            if np.dtype(dtype).kind == "O":
                dtype = np.int32
            return [dev(_traced(a, dtype), _traced(b, dtype))]
        if short == "select":
            p, a, b = xs
            if all(_is_host(v) and v.dtype != object for v in xs):
                return [np.where(p, a, b)]
            dtype = results[0][1]
            pt = _traced(p)
            if np.ndim(p) == 0:  # a scalar predicate picks whole operands
                pt = jnp.broadcast_to(pt, jnp.broadcast_shapes(np.shape(a), np.shape(b)))
            return [lax.select(pt, _traced(a, dtype), _traced(b, dtype))]
        if short == "clamp":
            lo, x, hi = xs
            dtype = results[0][1]
            if all(_is_host(v) and v.dtype != object for v in xs):
                return [np.clip(x, lo, hi).astype(dtype)]
            return [lax.clamp(_traced(lo, dtype), _traced(x, dtype), _traced(hi, dtype))]
        if short == "convert":
            (x,) = xs
            dtype = results[0][1]
            return [_host_cast(x, dtype) if _is_host(x) else lax.convert_element_type(x, dtype)]
        if short == "get_dimension_size":
            (x,) = xs
            d = np.shape(x)[self._int(op, "dimension")]
            return [np.array(int(d), np.int32) if isinstance(d, (int, np.integer)) else np.array(d, dtype=object)]
        if short in ("reshape", "dynamic_reshape"):
            x = xs[0]
            shape = _dims(xs[1], here) if short == "dynamic_reshape" else results[0][0]
            if any(d is None for d in shape):
                if tuple(np.shape(x)) and len(shape) == np.ndim(x):
                    shape = tuple(np.shape(x))
                else:
                    raise UnsupportedOperationError(f"{here}: a static reshape to a shape with unknown sizes")
            if _is_host(x):
                return [x.reshape(shape)]
            return [jnp.reshape(x, shape)]
        if short in ("broadcast_in_dim", "dynamic_broadcast_in_dim"):
            x = xs[0]
            bdims = self._ints(op, "broadcast_dimensions")
            if short == "dynamic_broadcast_in_dim":
                shape = _dims(xs[1], here)
            else:
                shape = tuple(d if d is not None else np.shape(x)[bdims.index(i)]
                              for i, d in enumerate(results[0][0]))
            if _is_host(x) and all(isinstance(d, int) for d in shape) and x.dtype != object:
                expanded = np.expand_dims(x, [i for i in range(len(shape)) if i not in bdims]) if x.ndim < len(shape) \
                    else x
                order = sorted(range(len(bdims)), key=lambda i: bdims[i])
                if x.ndim and order != list(range(len(bdims))):
                    raise UnsupportedOperationError(f"{here}: a transposing broadcast")
                return [np.broadcast_to(expanded, shape).copy()]
            if _symbolic(shape) and list(bdims) == sorted(bdims) and (not _is_host(x) or x.dtype != object):
                # kept compact: the target's rank, size 1 where broadcast
                missing = [i for i in range(len(shape)) if i not in bdims]
                compact = np.expand_dims(x, missing) if _is_host(x) else jnp.expand_dims(x, missing) if missing else x
                if all(c == 1 or c is s or (isinstance(c, int) and isinstance(s, int) and c == s)
                       for c, s in zip(np.shape(compact), shape, strict=True)) or not _is_host(x):
                    return [_Bcast(compact, shape)]
            xt = _traced(x)
            # operand dimensions of size 1 broadcast to the target's size
            return [lax.broadcast_in_dim(xt, shape, tuple(bdims))]
        if short in ("iota", "dynamic_iota"):
            shape = _dims(xs[0], here) if short == "dynamic_iota" else results[0][0]
            dim = self._int(op, "iota_dimension")
            dtype = results[0][1]
            if all(isinstance(d, int) for d in shape):
                idx = np.arange(shape[dim], dtype=dtype)
                return [np.broadcast_to(np.expand_dims(idx, [i for i in range(len(shape)) if i != dim]), shape).copy()]
            return [lax.broadcasted_iota(dtype, shape, dim)]
        if short == "concatenate":
            dim = self._int(op, "dimension")
            if all(_is_host(x) for x in xs):
                return [np.concatenate(xs, axis=dim)]
            dtype = results[0][1]
            return [lax.concatenate([_traced(x, dtype) for x in xs], dim)]
        if short == "slice":
            (x,) = xs
            start, limit = self._ints(op, "start_indices"), self._ints(op, "limit_indices")
            strides = self._ints(op, "strides") or [1] * len(start)
            if _is_host(x):
                return [x[tuple(slice(s, e, st) for s, e, st in zip(start, limit, strides, strict=True))]]
            return [lax.slice(x, start, limit, strides)]
        if short == "transpose":
            (x,) = xs
            perm = self._ints(op, "permutation")
            return [np.transpose(x, perm) if _is_host(x) else lax.transpose(x, perm)]
        if short == "dot_general":
            from jaxlib.mlir.dialects import stablehlo as hlo

            nums = hlo.DotDimensionNumbers(self._attr(op, "dot_dimension_numbers"))
            a, b = xs
            dims = ((tuple(nums.lhs_contracting_dimensions), tuple(nums.rhs_contracting_dimensions)),
                    (tuple(nums.lhs_batching_dimensions), tuple(nums.rhs_batching_dimensions)))
            dtype = results[0][1]
            return [lax.dot_general(_traced(a), _traced(b), dims, preferred_element_type=dtype)]
        if short == "reduce":
            return self._reduce(op, xs, here)
        if short in ("gather", "dynamic_gather"):
            return [self._gather(op, xs, here)]
        if short == "case":
            (index, *_) = xs
            if not _is_host(index):
                raise UnsupportedOperationError(f"{here}: a branch chosen by the data")
            branch = op.regions[int(index)]
            return self.run_block(branch.blocks[0], [], where, env)
        raise UnsupportedOperationError(f"operation {here} is not supported by the ONNX conversion")

    def _lazy_elementwise(self, short: str, op: Any, xs: list[Any], results: list[Any]) -> Any:
        """An elementwise operation on compact broadcasts (None: expand them instead)."""
        shape = next(x.shape for x in xs if isinstance(x, _Bcast))
        compacts = [x.value if isinstance(x, _Bcast) else x for x in xs]
        dtype = results[0][1]
        if short in _UNARY or short == "convert":
            (c,) = compacts
            if short == "convert":
                out = _host_cast(c, dtype) if _is_host(c) else lax.convert_element_type(c, dtype)
            else:
                host, dev = _UNARY[short]
                out = host(c).astype(dtype) if _is_host(c) else dev(c)
            return _Bcast(out, shape)
        if short not in _BINARY and short != "compare":
            return None
        if any(_is_host(c) and c.dtype == object for c in compacts):
            return None
        if short == "compare":
            from jaxlib.mlir.dialects import stablehlo as hlo

            direction = hlo.ComparisonDirectionAttr(self._attr(op, "comparison_direction")).value
            host, dev = _COMPARE[direction]
            in_dtype = next((c.dtype for c in compacts if not _is_host(c)), compacts[0].dtype)
        else:
            host, dev = _BINARY[short]
            in_dtype = dtype
        if all(_is_host(c) for c in compacts):
            out = np.asarray(host(*compacts))
            return _Bcast(out if short == "compare" else out.astype(dtype), shape)
        out = dev(*[_traced(c, in_dtype) for c in compacts])
        if tuple(np.shape(out)) == tuple(shape):
            return out
        return _Bcast(out, shape)

    def _reduce(self, op: Any, xs: list[Any], here: str) -> list[Any]:
        n = len(xs) // 2
        operands, inits = xs[:n], xs[n:]
        axes = tuple(self._ints(op, "dimensions"))
        body = [o.operation for o in op.regions[0].blocks[0].operations]
        names = [o.name.split(".", 1)[-1] for o in body]
        results = [self._result_type(r) for r in op.results]
        if n == 1 and len(body) == 2 and names[0] in _REDUCERS:
            kind = names[0]
            (x,), (init,) = operands, inits
            out = _REDUCERS[kind](_traced(x), axis=axes).astype(results[0][1])
            identity: Any = _IDENTITY.get(kind)
            if identity is None and _is_host(init) and kind in ("maximum", "minimum"):
                identity = -np.inf if kind == "maximum" else np.inf
                if np.asarray(init).dtype.kind in "iu":
                    info = np.iinfo(np.asarray(init).dtype)
                    identity = info.min if kind == "maximum" else info.max
            if not (_is_host(init) and identity is not None and np.all(init == identity)):
                out = _BINARY[kind][1](out, _traced(init, results[0][1]))
            return [out]
        if n == 2 and "compare" in names:
            # jnp.argmax / argmin: (values, iota) reduced by a comparator that keeps the
            # first extreme value and its index
            from jaxlib.mlir.dialects import stablehlo as hlo

            first = body[names.index("compare")]
            direction = hlo.ComparisonDirectionAttr(first.attributes["comparison_direction"]).value
            if direction in ("GT", "GE", "LT", "LE") and len(axes) == 1:
                x = _traced(operands[0])
                if direction in ("GT", "GE"):
                    return [jnp.max(x, axis=axes[0]), jnp.argmax(x, axis=axes[0]).astype(results[1][1])]
                return [jnp.min(x, axis=axes[0]), jnp.argmin(x, axis=axes[0]).astype(results[1][1])]
        raise UnsupportedOperationError(f"{here}: a reduction by {' → '.join(names)} is not supported "
                                        "(only sum, product, max, min, all, any, argmax and argmin)")

    def _gather(self, op: Any, xs: list[Any], here: str) -> Any:
        from jaxlib.mlir.dialects import stablehlo as hlo

        operand, indices = xs[:2]
        nums = hlo.GatherDimensionNumbers(self._attr(op, "dimension_numbers"))
        dnums = lax.GatherDimensionNumbers(
            offset_dims=tuple(nums.offset_dims), collapsed_slice_dims=tuple(nums.collapsed_slice_dims),
            start_index_map=tuple(nums.start_index_map),
            operand_batching_dims=tuple(getattr(nums, "operand_batching_dims", ())),
            start_indices_batching_dims=tuple(getattr(nums, "start_indices_batching_dims", ())))
        if nums.index_vector_dim != np.ndim(indices) - 1:
            raise UnsupportedOperationError(f"{here}: a gather whose index vector is not the last dimension")
        sizes = _dims(xs[2], here) if len(xs) > 2 else tuple(self._ints(op, "slice_sizes"))
        # StableHLO clamps out-of-range starts, as lax's "clip" mode does
        return lax.gather(_traced(operand), _traced(indices), dnums, sizes, mode=lax.GatherScatterMode.CLIP)


def as_jax_function(exported: jax.export.Exported, args: Sequence[Any]) -> Callable[..., list[Any]]:
    """``f(*dynamic_args) -> flat outputs`` evaluating ``exported``'s StableHLO with lax.

    Args:
        exported: a deserialized ``jax.export`` function.
        args: the flat arguments in ``exported.in_tree`` order; a NumPy array is a
            constant (evaluated on the host), ``None`` marks an argument ``f`` takes.

    Raises:
        UnsupportedOperationError: the module uses an operation outside the covered set
            (raised when ``f`` runs, naming the operation and the function it is in).
    """
    module = _Module(str(exported.mlir_module()))
    main = module.funcs["main"]
    block = main.regions[0].blocks[0]
    n_dynamic = sum(a is None for a in args)
    extra = len(block.arguments) - len(args)
    if extra not in (0, 1):
        raise UnsupportedOperationError(f"the module's main takes {len(block.arguments)} arguments, "
                                        f"{len(args)} expected")
    lead: list[Any] = []
    if extra:
        # the platform index of a multi-platform export: lower for the CPU
        platforms = [p.lower() for p in exported.platforms]
        lead = [np.array(platforms.index("cpu") if "cpu" in platforms else 0, np.int32)]

    def fn(*dynamic: Any) -> list[Any]:
        if len(dynamic) != n_dynamic:
            raise TypeError(f"expected {n_dynamic} arguments, got {len(dynamic)}")
        it = iter(dynamic)
        full = lead + [next(it) if a is None else np.asarray(a) for a in args]
        return module.call("main", full)

    return fn

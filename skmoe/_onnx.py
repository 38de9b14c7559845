"""ONNX export of a fitted estimator: encoding, routing and experts as one graph.

The graph computes what ``predict`` computes, in the same order and at the
same precision: the input encoding in float64 (robust, quantile and
piecewise-linear views, missing indicators, one-hot slots, target
encodings), then the network in float32, as skmoe's engine runs it. Each row
goes to its expert(s) only: for every expert the graph gathers the rows
routed to it, runs that expert on them and scatters its outputs back, so a
row costs its own expert, as in skmoe.

Needs the optional ``onnx`` package (``pip install "skmoe[onnx]"``);
onnxruntime runs the result. :func:`register_skl2onnx` teaches skl2onnx the
estimators, so that ``skl2onnx.to_onnx(pipeline)`` converts a Pipeline that
ends in one.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._torch import api as engine

__all__ = ["register_skl2onnx", "to_onnx"]

_OPSET = 17  # ScatterND's "add" reduction needs 16
_ML_OPSET = 2  # LabelEncoder with string keys and int64 values


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(
            'skmoe.to_onnx needs the onnx package: pip install "skmoe[onnx]" '
            "(onnx, onnxruntime and skl2onnx)."
        ) from None
    return onnx


class _Graph:
    """Nodes and initializers under unique names; ``op`` returns the output name."""

    def __init__(self, prefix: str = "") -> None:
        self.onnx = _onnx()
        self.prefix, self.nodes, self.initializers, self._count = prefix, [], [], 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value, dtype=None, hint: str = "c") -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, domain: str = "", outputs: int = 1, out=None, **attrs):
        names = out if out is not None else [self.name(op_type.lower()) for _ in range(outputs)]
        names = [names] if isinstance(names, str) else names
        self.nodes.append(
            self.onnx.helper.make_node(op_type, list(inputs), names, name=self.name("n"), domain=domain, **attrs)
        )
        return names[0] if len(names) == 1 else names


# -- the encoding, float64 -----------------------------------------------------------
def _numeric_views(g: _Graph, x: str, numeric) -> str:
    """The numeric encoder's views of ``x`` ``(n, d)`` float64: ``(n, n_outputs)``."""
    missing = g.op("IsNaN", x)
    x = g.op("Where", missing, g.const(numeric.median_[None, :], np.float64), x)
    z = g.op("Div", g.op("Sub", x, g.const(numeric.center_, np.float64)), g.const(numeric.scale_, np.float64))
    squeeze = g.op("Sqrt", g.op("Add", g.const(1.0, np.float64),
                                g.op("Mul", *[g.op("Div", z, g.const(numeric.clip, np.float64))] * 2)))
    views = [g.op("Div", z, squeeze), _quantile_normal(g, x, numeric)]
    if numeric._n_bins:
        views.append(_piecewise_linear(g, x, numeric))
    if numeric.has_missing_.any():
        flags = g.op("Gather", missing, g.const(np.flatnonzero(numeric.has_missing_), np.int64), axis=1)
        views.append(g.op("Cast", flags, to=11))  # DOUBLE
    return g.op("Concat", *views, axis=1)


def _quantile_normal(g: _Graph, x: str, numeric) -> str:
    """``NumericEncoder._quantile_normal``: a batched search of each value among
    its column's distinct quantiles, the linear CDF between them, then the
    normal quantile function."""
    values, first, last, n_values = numeric._cdf_table()  # (d, U), +inf padded
    d, U = values.shape
    base = g.const(np.arange(d, dtype=np.int64) * U)

    def take(table, idx):
        return g.op("Gather", g.const(np.ravel(table), np.float64), g.op("Add", idx, base), axis=0)

    k = g.op("Sub", _count_at_most(g, x, values), g.const(1, np.int64))  # the last quantile <= x
    kk = g.op("Max", k, g.const(0, np.int64))
    nxt = g.op("Min", g.op("Add", kk, g.const(1, np.int64)), g.const(U - 1, np.int64))

    u0, u1 = take(values, kk), take(values, nxt)
    lo0, hi0, lo1 = take(first, kk), take(last, kk), take(first, nxt)
    inside = g.op("And", g.op("And", g.op("GreaterOrEqual", k, g.const(0, np.int64)),
                              g.op("Less", g.op("Add", kk, g.const(1, np.int64)), g.const(n_values, np.int64))),
                  g.op("Greater", x, u0))
    between = g.op("Add", hi0, g.op("Div", g.op("Mul", g.op("Sub", x, u0), g.op("Sub", lo1, hi0)),
                                    g.op("Sub", u1, u0)))
    tie = g.op("Mul", g.const(0.5, np.float64), g.op("Add", lo0, hi0))
    p = g.op("Where", inside, between, g.op("Where", g.op("Equal", x, u0), tie, hi0))
    p = g.op("Where", g.op("Less", k, g.const(0, np.int64)), g.const(first[:, 0], np.float64), p)
    eps = 1e-7
    p = g.op("Clip", p, g.const(eps, np.float64), g.const(1.0 - eps, np.float64))
    return _ndtri(g, p)


def _count_at_most(g: _Graph, x: str, values: np.ndarray) -> str:
    """How many of each column's sorted ``values`` ``(d, U)`` are <= ``x`` ``(n, d)``:
    a binary search unrolled into log2(U) steps (ONNX has no searchsorted), each
    an elementwise pass over ``(n, d)`` rather than one over ``(n, d, U)``."""
    d, U = values.shape
    steps = 1 << int(np.ceil(np.log2(U + 1)))  # counts 0..U fit below it
    padded = np.full((d, steps), np.inf)
    padded[:, :U] = values
    flat, base = g.const(np.ravel(padded), np.float64), g.const(np.arange(d, dtype=np.int64) * steps)
    count = None
    step = steps // 2
    while step:
        # (The first probe is one index for all rows; broadcasting makes ok (n, d).)
        probe = g.const(step - 1, np.int64) if count is None else g.op("Add", count, g.const(step - 1, np.int64))
        ok = g.op("LessOrEqual", g.op("Gather", flat, g.op("Add", probe, base), axis=0), x)
        grown = g.op("Add", probe, g.const(1, np.int64))
        count = g.op("Where", ok, grown, g.op("Sub", grown, g.const(step, np.int64)))
        step //= 2
    return count


# Wichura's AS241 (PPND16): the normal quantile to about 1e-16, from
# additions, products, a logarithm and a square root.
_A = [3.387132872796366608, 133.14166789178437745, 1971.5909503065514427, 13731.693765509461125,
      45921.953931549871457, 67265.770927008700853, 33430.575583588128105, 2509.0809287301226727]
_B = [1.0, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077,
      21213.794301586595867, 39307.89580009271061, 28729.085735721942674, 5226.495278852545925]
_C = [1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055, 3.64784832476320460504,
      1.27045825245236838258, 0.24178072517745061177, 0.0227238449892691845833, 7.7454501427834140764e-4]
_D = [1.0, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455,
      0.14810397642748007459, 0.0151986665636164571966, 5.475938084995344946e-4, 1.05075007164441684324e-9]
_E = [6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358, 0.29656057182850489123,
      0.026532189526576123093, 0.0012426609473880784386, 2.71155556874348757815e-5, 2.01033439929228813265e-7]
_F = [1.0, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525,
      7.868691311456132591e-4, 1.8463183175100546818e-5, 1.4215117583164458887e-7, 2.04426310338993978564e-15]


def _ndtri(g: _Graph, p: str) -> str:
    def poly(coefs, t):
        acc = g.const(coefs[-1], np.float64)
        for c in reversed(coefs[:-1]):
            acc = g.op("Add", g.op("Mul", acc, t), g.const(c, np.float64))
        return acc

    q = g.op("Sub", p, g.const(0.5, np.float64))
    r_central = g.op("Sub", g.const(0.180625, np.float64), g.op("Mul", q, q))
    central = g.op("Div", g.op("Mul", q, poly(_A, r_central)), poly(_B, r_central))
    tail_p = g.op("Min", p, g.op("Sub", g.const(1.0, np.float64), p))
    r = g.op("Sqrt", g.op("Neg", g.op("Log", tail_p)))
    near = g.op("Sub", r, g.const(1.6, np.float64))
    far = g.op("Sub", r, g.const(5.0, np.float64))
    tail = g.op("Where", g.op("LessOrEqual", r, g.const(5.0, np.float64)),
                g.op("Div", poly(_C, near), poly(_D, near)), g.op("Div", poly(_E, far), poly(_F, far)))
    tail = g.op("Where", g.op("Less", q, g.const(0.0, np.float64)), g.op("Neg", tail), tail)
    is_central = g.op("LessOrEqual", g.op("Abs", q), g.const(0.425, np.float64))
    return g.op("Where", is_central, central, tail)


def _piecewise_linear(g: _Graph, x: str, numeric) -> str:
    """How far each value fills each bin, column-major blocks ``(n, d * n_bins)``."""
    edges = numeric.bin_edges()  # (n_bins + 1, d)
    lo, hi = edges[:-1].T, edges[1:].T  # (d, n_bins)
    span = hi - lo
    x3 = g.op("Unsqueeze", x, g.const([2], np.int64))  # (n, d, 1)
    ramp = g.op("Div", g.op("Sub", x3, g.const(lo, np.float64)), g.const(np.where(span > 0, span, 1.0), np.float64))
    step = g.op("Cast", g.op("GreaterOrEqual", x3, g.const(hi, np.float64)), to=11)
    fill = g.op("Where", g.const(span > 0, bool), ramp, step)
    fill = g.op("Clip", fill, g.const(0.0, np.float64), g.const(1.0, np.float64))
    return g.op("Reshape", fill, g.const([0, -1], np.int64))


def _category_codes(g: _Graph, column: str, levels: np.ndarray) -> str:
    """Codes ``(n, 1)`` float64 of a string column: a level's index, -2 unseen,
    -1 missing (the empty string, unless it is a level)."""
    codes = g.op("LabelEncoder", column, domain="ai.onnx.ml", keys_strings=[str(v) for v in levels],
                 values_int64s=list(range(len(levels))), default_int64=-2)
    if "" not in set(levels):
        # (A second lookup: onnxruntime compares no strings with Equal before opset 19.)
        empty = g.op("LabelEncoder", column, domain="ai.onnx.ml", keys_strings=[""],
                     values_int64s=[1], default_int64=0)
        codes = g.op("Where", g.op("Cast", empty, to=9), g.const(-1, np.int64), codes)
    return g.op("Cast", codes, to=11)


def _matches(g: _Graph, codes: str, values: np.ndarray) -> tuple[str, str]:
    """For codes ``(n, 1)``: which of the distinct ``values`` each equals,
    ``(n, len(values))`` 0/1 float64, and whether it equals none, ``(n, 1)``."""
    hits = g.op("Cast", g.op("Equal", codes, g.const(np.asarray(values, np.float64)[None, :])), to=11)
    none = g.op("Sub", g.const(1.0, np.float64), g.op("ReduceSum", hits, g.const([1], np.int64), keepdims=1))
    return hits, none


def _categorical_views(g: _Graph, codes: list[str], categorical) -> list[str]:
    """One-hot slots of every column, then the target encodings."""
    views = []
    for column, slots in zip(codes, categorical.slots_):
        hits, other = _matches(g, column, slots)
        views += [hits, other] if len(slots) else [other]
    for j, (seen, encodings, default) in zip(categorical.target_columns_, categorical.target_tables_):
        hits, unseen = _matches(g, codes[j], seen)
        views.append(g.op("Add", g.op("MatMul", hits, g.const(encodings, np.float64)),
                          g.op("Mul", unseen, g.const(default[None, :], np.float64))))
    return views


# -- the network, float32 --------------------------------------------------------------
def _nearest(g: _Graph, z: str, points: np.ndarray, mask: str | None = None) -> str:
    """Index ``(n,)`` of each row's nearest point, as ``nearest_prototype`` scores it."""
    points = points.astype(np.float32)
    scores = g.op("Add", g.op("MatMul", z, g.const(-2.0 * points.T, np.float32)),
                  g.const((points * points).sum(1), np.float32))
    if mask is not None:
        scores = g.op("Where", mask, scores, g.const(np.inf, np.float32))
    return g.op("ArgMin", scores, axis=1, keepdims=0)


def _route(g: _Graph, z: str, spec: dict, arrays: dict) -> tuple[list[str], list[str | None]]:
    """Each slot's expert ``(n,)`` and its gate ``(n, 1)`` (None: weight one)."""
    router = spec["router"]
    if router["kind"] == "voronoi":
        prototypes = arrays["router/prototypes"]
        if not router.get("tree"):
            return [_nearest(g, z, prototypes)], [None]
        offsets, members = arrays["router/tree_offsets"], arrays["router/tree_members"]
        allowed = np.zeros((len(offsets) - 1, len(prototypes)), dtype=bool)  # (G, E)
        for group, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
            allowed[group, members[a:b]] = True
        group = _nearest(g, z, arrays["router/tree_centres"])
        return [_nearest(g, z, prototypes, g.op("Gather", g.const(allowed), group, axis=0))], [None]
    logits = g.op("Add", g.op("MatMul", z, g.const(arrays["router/gate_weight"].T, np.float32)),
                  g.const(arrays["router/gate_bias"], np.float32))
    retired = np.where(arrays["router/expert_id"] < 0, -np.inf, 0.0)
    selection = g.op("Add", logits, g.const(arrays["router/balance_bias"] + retired, np.float32))
    k = int(router["top_k"])
    _, rows = g.op("TopK", selection, g.const([k], np.int64), axis=1, outputs=2)
    experts = g.op("Gather", g.const(arrays["router/expert_id"], np.int64), rows, axis=0)  # (n, k)
    slots = [g.op("Gather", experts, g.const(s, np.int64), axis=1) for s in range(k)]
    if k == 1:
        return slots, [None]
    gates = g.op("Softmax", g.op("GatherElements", logits, rows, axis=1), axis=1)
    return slots, [g.op("Gather", gates, g.const([s], np.int64), axis=1) for s in range(k)]


def _expert(g: _Graph, h: str, spec: dict, arrays: dict, e: int) -> str:
    """Expert ``e`` on its rows ``h`` ``(m, n_inputs)``: ``(m, n_outputs)``, the members' mean."""
    depth, members, o = spec["depth"], spec["members"], spec["n_outputs"]
    weights = [arrays[f"bank/weights{i}"][e] for i in range(depth + 1)]
    biases = [arrays[f"bank/biases{i}"][e] for i in range(depth + 1)]
    if members > 1:
        adapter = arrays["bank/adapters0"][e]  # (k, n_inputs), a row's members adjacent
        h = g.op("Mul", g.op("Unsqueeze", h, g.const([1], np.int64)), g.const(adapter, np.float32))
        h = g.op("Reshape", h, g.const([-1, adapter.shape[1]], np.int64))
    for i in range(depth):
        h = g.op("Gemm", h, g.const(weights[i], np.float32), g.const(biases[i], np.float32))
        if spec["prelu"]:
            # relu(h) + slope * min(h, 0): F.prelu's values exactly, 2.6x faster
            # in onnxruntime than its PRelu kernel (which took half of a
            # prediction's time).
            negative = g.op("Min", h, g.const(0.0, np.float32))
            h = g.op("Add", g.op("Relu", h),
                     g.op("Mul", negative, g.const(arrays[f"bank/slopes{i}"][e], np.float32)))
        else:
            h = g.op("Relu", h)
    out_weight, out_bias = weights[-1].astype(np.float32), biases[-1].astype(np.float32)
    if members == 1:
        return g.op("Gemm", h, g.const(out_weight), g.const(out_bias))
    width = out_weight.shape[0]
    # As mlp_forward: the members' mean as one product over their stacked hidden units.
    heads = out_weight.reshape(width, members, o).transpose(1, 0, 2).reshape(members * width, o) / np.float32(members)
    h = g.op("Reshape", h, g.const([-1, members * width], np.int64))
    return g.op("Gemm", h, g.const(heads), g.const(out_bias.reshape(members, o).mean(axis=0, dtype=np.float32)))


def _network(g: _Graph, z: str, network) -> str:
    """Network outputs ``(n, n_outputs)`` float32, every expert run on its own rows only."""
    spec, arrays = engine.network_to_arrays(network)
    slots, gates = _route(g, z, spec, arrays)
    shape = g.op("Concat", g.op("Slice", g.op("Shape", z), g.const([0], np.int64), g.const([1], np.int64)),
                 g.const([spec["n_outputs"]], np.int64), axis=0)
    acc = g.op("ConstantOfShape", shape, value=g.onnx.numpy_helper.from_array(np.zeros(1, np.float32)))
    for experts, gate in zip(slots, gates):
        for e in range(spec["n_experts"]):
            rows = g.op("NonZero", g.op("Equal", experts, g.const(e, np.int64)))  # (1, m)
            index = g.op("Transpose", rows)  # (m, 1)
            h = g.op("GatherND", z, index)
            out = _expert(g, h, spec, arrays, e)
            if gate is not None:
                out = g.op("Mul", out, g.op("GatherND", gate, index))
            acc = g.op("ScatterND", acc, index, out, reduction="add")
    return acc


# -- the whole model ---------------------------------------------------------------------
def _encoded(g: _Graph, model, numeric: str, columns: dict[int, str]) -> str:
    """The network's input ``(n, n_inputs)`` float32 from the numeric matrix and
    the string columns (by column index)."""
    encoder, schema = model.encoder_, model.schema_
    views = [_numeric_views(g, numeric, encoder.numeric_)] if numeric is not None else []
    codes = [_category_codes(g, columns[j], schema.levels_[j]) for j in np.flatnonzero(schema.is_categorical_)]
    views += _categorical_views(g, codes, encoder.categorical_)
    return g.op("Cast", views[0] if len(views) == 1 else g.op("Concat", *views, axis=1), to=1)


def _outputs(g: _Graph, model, raw: str, names: list[str]) -> list[tuple[str, int, list]]:
    """Predictions (and probabilities) from the network's float32 outputs, named ``names``."""
    raw = g.op("Cast", raw, to=11)
    if not hasattr(model, "classes_"):
        bounds = model._clip_bounds()
        scaled = g.op("Add", g.op("Mul", raw, g.const(model.y_scale_, np.float64)),
                      g.const(model.y_mean_, np.float64), out=None if bounds is not None else names[0])
        if bounds is not None:  # Max and Min broadcast one bound per output (Clip takes scalars)
            lo, hi = (g.const(b, np.float64) for b in bounds)
            scaled = g.op("Min", g.op("Max", scaled, lo), hi, out=names[0])
        return [(scaled, 11, [None, int(model.n_outputs_)])]
    classes = model.classes_
    if len(classes) == 2:  # the single logit is class 1's
        raw = g.op("Concat", g.op("Mul", raw, g.const(0.0, np.float64)), raw, axis=1)
    proba = g.op("Softmax", raw, axis=1, out=names[1])
    best = g.op("ArgMax", raw, axis=1, keepdims=0)
    table, elem = _label_table(classes)
    label = g.op("Gather", g.const(table), best, axis=0, out=names[0])
    return [(label, elem, [None]), (proba, 11, [None, len(classes)])]


def _label_table(classes: np.ndarray) -> tuple[np.ndarray, int]:
    """The classes as an ONNX tensor: int64 for integers and booleans, double for
    floats, strings otherwise."""
    if classes.dtype.kind in "iub":
        return classes.astype(np.int64), 7
    if classes.dtype.kind == "f":
        return classes.astype(np.float64), 11
    return np.asarray([str(c) for c in classes], dtype=object), 8


def to_onnx(model, *, target_opset: int | None = None):
    """Export a fitted estimator to an ONNX model for onnxruntime and other servers.

    The graph holds the input encoding, the routing (each row to its own
    expert) and the experts, and gives what ``predict`` gives (and
    ``predict_proba``) within float32 rounding.

    Inputs: a model fitted on numeric columns only takes one float64 input
    ``X`` of shape ``(n, n_features)``, columns in ``feature_names_in_``
    order, NaN where missing. A model with categorical columns takes one
    input per column, named as the column, of shape ``(n, 1)``: float64 for
    numeric columns and strings (``str(value)``, as skmoe compares them) for
    categorical ones, the empty string where missing.

    Outputs: a regressor gives ``variable``, ``(n, n_outputs)`` float64; a
    classifier ``label`` ``(n,)`` and ``probabilities`` ``(n, n_classes)``
    (columns in ``classes_`` order).

    Unlike ``predict``, the graph does not validate its input: infinities and
    wrong column orders are not refused.

    Parameters
    ----------
    model : fitted MoERegressor or MoEClassifier
    target_opset : int, default=None
        The ONNX opset (default 17, the lowest the graph needs).

    Returns
    -------
    onnx.ModelProto
    """
    onnx = _onnx()
    check_is_fitted(model, "network_")
    g = _Graph()
    names = _column_names(model)
    is_cat = model.schema_.is_categorical_
    if not is_cat.any():
        inputs = [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.DOUBLE, [None, len(names)])]
        numeric, columns = "X", {}
    else:
        inputs = [onnx.helper.make_tensor_value_info(
            name, onnx.TensorProto.STRING if cat else onnx.TensorProto.DOUBLE, [None, 1])
            for name, cat in zip(names, is_cat)]
        numeric_names = [n for n, cat in zip(names, is_cat) if not cat]
        numeric = g.op("Concat", *numeric_names, axis=1) if numeric_names else None
        columns = {j: names[j] for j in np.flatnonzero(is_cat)}
    raw = _network(g, _encoded(g, model, numeric, columns), model.network_)
    outputs = _outputs(g, model, raw, ["label", "probabilities"] if hasattr(model, "classes_") else ["variable"])
    graph = onnx.helper.make_graph(
        g.nodes, f"skmoe_{type(model).__name__}", inputs,
        [onnx.helper.make_tensor_value_info(name, elem, shape) for name, elem, shape in outputs],
        initializer=g.initializers,
    )
    opset = target_opset or _OPSET
    proto = onnx.helper.make_model(graph, opset_imports=[
        onnx.helper.make_opsetid("", opset), onnx.helper.make_opsetid("ai.onnx.ml", _ML_OPSET)])
    proto.producer_name = "skmoe"
    onnx.checker.check_model(proto)
    return proto


def onnx_feeds(model, X) -> dict[str, np.ndarray]:
    """The inputs of :func:`to_onnx`'s graph for the rows of ``X``, as skmoe reads
    them (a DataFrame's columns by name; categories as strings, missing as "")."""
    import pandas as pd

    from ._inputs import as_table

    X = as_table(X)
    names = _column_names(model)
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object), columns=names)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)[names]
    if not model.schema_.is_categorical_.any():
        return {"X": frame.to_numpy(dtype=np.float64, na_value=np.nan)}
    feeds = {}
    for name, categorical in zip(names, model.schema_.is_categorical_):
        column = frame[name]
        if categorical:
            values = column.astype(object).where(column.notna(), "").map(str).to_numpy(dtype=object)
        else:
            values = pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)
        feeds[name] = values[:, None]
    return feeds


def _column_names(model) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else [f"x{j}" for j in range(model.n_features_in_)]


# -- skl2onnx -------------------------------------------------------------------------------
def register_skl2onnx() -> None:
    """Register skmoe's estimators with skl2onnx (needs ``skl2onnx``).

    After it, ``skl2onnx.to_onnx(pipeline, X)`` converts a Pipeline whose last
    step is a skmoe estimator fitted on numeric columns: the steps before it
    give the numeric matrix (float or double), which the estimator's graph
    takes as its ``X``. :func:`to_onnx` calls it; calling it again is harmless.
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError:
        raise ImportError('skmoe.register_skl2onnx needs skl2onnx: pip install "skmoe[onnx]".') from None
    from ._estimators import MoEClassifier, MoERegressor

    update_registered_converter(MoERegressor, "SkmoeMoERegressor", _shape_regressor, _convert)
    update_registered_converter(
        MoEClassifier, "SkmoeMoEClassifier", _shape_classifier, _convert,
        options={"zipmap": [False, True, "columns"], "nocl": [False, True]},
    )


def _input_elem(operator) -> int:
    """ONNX element type of the operator's input: float (1) or double (11)."""
    from skl2onnx.common.data_types import DoubleTensorType

    return 11 if isinstance(operator.inputs[0].type, DoubleTensorType) else 1


def _shape_regressor(operator) -> None:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    n = operator.inputs[0].get_first_dimension()
    kind = DoubleTensorType if _input_elem(operator) == 11 else FloatTensorType
    operator.outputs[0].type = kind([n, int(operator.raw_operator.n_outputs_)])


def _shape_classifier(operator) -> None:
    from skl2onnx.common.data_types import (
        DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType,
    )

    n = operator.inputs[0].get_first_dimension()
    classes = operator.raw_operator.classes_
    operator.outputs[0].type = Int64TensorType([n]) if classes.dtype.kind in "iub" else StringTensorType([n])
    kind = DoubleTensorType if _input_elem(operator) == 11 else FloatTensorType
    operator.outputs[1].type = kind([n, len(classes)])


def _convert(scope, operator, container) -> None:
    """skl2onnx's converter: the estimator's graph on the pipeline's numeric matrix."""
    model = operator.raw_operator
    if model.schema_.is_categorical_.any():
        raise NotImplementedError(
            "skl2onnx converts a skmoe estimator fitted on numeric columns only (the "
            "steps before it encode the categories); export a model with categorical "
            "columns with skmoe.to_onnx."
        )
    g = _Graph(prefix=scope.get_unique_operator_name("skmoe") + "_")
    x = g.op("Cast", operator.inputs[0].full_name, to=11)
    raw = _network(g, _encoded(g, model, x, {}), model.network_)
    outs = _outputs(g, model, raw, [g.name(v.onnx_name) for v in operator.outputs])
    elem = _input_elem(operator)
    for (name, kind, _), target in zip(outs, operator.outputs):
        if kind == 11:  # values and probabilities in the pipeline's float type
            g.op("Cast", name, to=elem, out=target.full_name)
        else:
            g.op("Identity", name, out=target.full_name)
    for tensor in g.initializers:
        container.initializers.append(tensor)
    attr_value = g.onnx.helper.get_attribute_value
    for node in g.nodes:
        container.add_node(node.op_type, list(node.input), list(node.output), name=node.name,
                           op_domain=node.domain, op_version=_ML_OPSET if node.domain else _OPSET,
                           **{a.name: attr_value(a) for a in node.attribute})

"""fusedrnn.torch: the drop-in torch.nn modules against torch.nn itself.

1. Layers (LSTM, GRU, RNN tanh/relu): outputs, final states and EVERY gradient (input,
   h_0/c_0 when given, every parameter) against the torch.nn module whose weights ours
   shares (``frt.from_torch(copy.deepcopy(ref))``) or loads (``load_state_dict``), over a
   pairwise covering sample of the options: kind, num_layers, bidirectional,
   batch_first, bias, proj_size (LSTM only), hx given / None, the input (padded,
   unbatched, pack_padded_sequence with enforce_sorted False and True, pack_sequence),
   dropout > 0 in eval mode; one sample per dtype (test_pairwise_coverage checks that
   every pair of option values appears together in some case of each).  Cells (LSTMCell, GRUCell,
   RNNCell tanh/relu) over the full product of their few options, unrolled over several
   steps with the gradient through all of them.  Inference under ``torch.no_grad()`` and
   ``torch.inference_mode()``.
2. Dropout in training mode: reproducible under ``torch.manual_seed``, different from
   dropout=0, ignored for one layer (as torch.nn does), and the forward and every
   gradient equal to a stack of one-layer torch.nn modules with ``F.dropout`` between
   them drawn from the same seed (the same masks: both draw ``F.dropout`` on the
   time-major layer output, the same tensors in the same order).
3. Training: a many-to-one sequence classifier (LSTM/GRU -> last step or h_n ->
   nn.Linear -> cross-entropy over 3 classes), torch.nn and ``frt.replace_rnns`` of a
   deep copy trained side by side from the same weights with Adam and SGD+momentum: the
   loss curves agree step by step, and the loss goes down.

Errors are max-abs relative: ``max|ours - torch| / max|torch|``; float64 1e-12 (both
sides float64, only summation orders differ), float32 1e-5 (observed below 4e-7).
Loss curves: float64 1e-9, float32 1e-4 relative.  torch is never imported at module
level: the ``torch`` and ``frt`` fixtures (tests/conftest.py) skip without it and fail
under FUSEDRNN_REQUIRE_TORCH=1.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from _pairwise import all_cases, assert_covers, pairwise_cases

pytestmark = [
    pytest.mark.filterwarnings("ignore:dropout option adds dropout after all but last"),
    pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
]

TOL = {"f32": 1e-5, "f64": 1e-12}
CURVE_TOL = {"f32": 1e-4, "f64": 1e-9}

# Sizes: small, so that the file runs in seconds.  P < H for the LSTM projection.
I, H, P, T, B = 4, 7, 3, 6, 4
LENGTHS = [4, 6, 1, 5]  # unsorted, with a 1 and a T
assert len(LENGTHS) == B and min(LENGTHS) == 1 and max(LENGTHS) == T

#: Largest error seen per (area, dtype) in this session (for reporting, not asserted).
ERRS: dict = {}


@pytest.fixture(autouse=True)
def _torch_one_thread(request):
    """torch's own operations on one thread in the tests that use torch: these problems
    are tiny, and torch's thread pool only costs time on them (most on a busy machine).
    fusedrnn's kernels keep fusedrnn's thread count.  Restored after each test."""
    if "torch" not in request.fixturenames:
        yield
        return
    torch = request.getfixturevalue("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tdtype(torch, name):
    return {"f32": torch.float32, "f64": torch.float64}[name]


def _err(a, b):
    """max|a - b| / max|b| in float64 (b the torch.nn oracle)."""
    a = a.detach().double()
    b = b.detach().double()
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    assert b.numel() > 0
    den = max(float(b.abs().max()), np.finfo(np.float64).tiny)
    return float((a - b).abs().max()) / den


def _check(ours, ref, tol, area, dtype, what=""):
    """Every entry of two result dicts (same keys) within tol; records the largest."""
    assert list(ours) == list(ref), f"{what}: keys {list(ours)} != {list(ref)}"
    worst = 0.0
    for k, r in ref.items():
        assert ours[k] is not None and r is not None, f"{what} {k}: missing"
        e = _err(ours[k], r)
        assert e <= tol, f"{what} {k}: relative error {e:.3e} > {tol:.1e}"
        worst = max(worst, e)
    key = (area, dtype)
    ERRS[key] = max(ERRS.get(key, 0.0), worst)


def _split(state):
    return state if isinstance(state, tuple) else (state, None)


def _weights_for(torch, W, name, t, seed):
    """The loss weight of result ``name`` (made once, at the oracle's run, then shared)."""
    if name not in W:
        g = torch.Generator().manual_seed(seed * 1000 + len(W))
        W[name] = torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
    return W[name]


def _loss_and_grads(torch, mod, results, leaves, W, seed):
    """Backward of sum_k <results[k], W[k]>, then results + every gradient by name."""
    loss = sum((v * _weights_for(torch, W, k, v, seed)).sum() for k, v in results.items())
    loss.backward()
    out = {k: v.detach() for k, v in results.items()}
    for k, leaf in leaves.items():
        assert leaf.grad is not None, f"no gradient for {k}"
        out["d_" + k] = leaf.grad
    for n, p in mod.named_parameters():
        assert p.grad is not None, f"no gradient for parameter {n}"
        out["d_" + n] = p.grad
    return out


# ============================================================ 1. layers, pairwise
FACTORS = {
    "kind": ("lstm", "gru", "rnn_tanh", "rnn_relu"),
    "num_layers": (1, 3),
    "bidirectional": (False, True),
    "batch_first": (False, True),
    "bias": (True, False),
    "proj_size": (0, P),  # > 0: LSTM only
    "hx": (True, False),  # initial state given (requires_grad) / None
    "input": ("padded", "unbatched", "packed_unsorted", "packed_sorted", "pack_sequence"),
    "dropout": (0.0, 0.5),  # > 0: compared in eval mode
}


def _valid(case):
    return case["proj_size"] == 0 or case["kind"] == "lstm"


#: dtype -> its own pairwise sample (each dtype covers every pair)
PAIRWISE = {"f32": pairwise_cases(FACTORS, _valid),
            "f64": pairwise_cases(FACTORS, _valid, reverse=True)}
CASES = [dict(c, dtype=dt) for dt, cases in PAIRWISE.items() for c in cases]


def _case_id(i, c):
    parts = [c["dtype"], str(i), c["kind"], f"L{c['num_layers']}", c["input"]]
    parts += [name for name, on in (("bi", c["bidirectional"]), ("bf", c["batch_first"]),
                                    ("nobias", not c["bias"]), ("nohx", not c["hx"]),
                                    ("drop", c["dropout"] > 0)) if on]
    if c["proj_size"]:
        parts.append(f"P{c['proj_size']}")
    return "-".join(parts)


@pytest.mark.parametrize("dtype", list(PAIRWISE))
def test_pairwise_coverage(dtype):
    """Each dtype's sample covers every pair of option values, has only valid cases and
    no duplicates, and is far smaller than the full product."""
    cases = PAIRWISE[dtype]
    assert_covers(cases, FACTORS, _valid)
    # (kind, input) alone needs 4 * 5 cases
    assert 4 * 5 <= len(cases) <= 30 < len(all_cases(FACTORS, _valid))
    assert [dict(c, dtype=dtype) for c in cases] == [c for c in CASES if c["dtype"] == dtype]


def _torch_layer(torch, case):
    kind = case["kind"]
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(kind, torch.nn.RNN)
    kw = dict(num_layers=case["num_layers"], bidirectional=case["bidirectional"],
              batch_first=case["batch_first"], bias=case["bias"], dropout=case["dropout"],
              dtype=_tdtype(torch, case["dtype"]))
    if kind.startswith("rnn_"):
        kw["nonlinearity"] = kind[4:]
    if case["proj_size"]:
        kw["proj_size"] = case["proj_size"]
    return cls, kw


def _layer_problem(torch, case, seed):
    """Base tensors (x padded in the case's layout, lengths, hx) for a case."""
    dt = _tdtype(torch, case["dtype"])
    g = torch.Generator().manual_seed(seed)
    L, D = case["num_layers"], 2 if case["bidirectional"] else 1
    Hr = case["proj_size"] or H
    unbatched = case["input"] == "unbatched"
    if unbatched:
        x = torch.randn(T, I, generator=g, dtype=torch.float64)
    elif case["batch_first"]:
        x = torch.randn(B, T, I, generator=g, dtype=torch.float64)
    else:
        x = torch.randn(T, B, I, generator=g, dtype=torch.float64)
    lengths = (sorted(LENGTHS, reverse=True) if case["input"] == "packed_sorted"
               else list(LENGTHS))
    hx = None
    if case["hx"]:
        lead = (L * D,) if unbatched else (L * D, B)
        hx = [0.5 * torch.randn(lead + (Hr,), generator=g, dtype=torch.float64)]
        if case["kind"] == "lstm":
            hx.append(0.5 * torch.randn(lead + (H,), generator=g, dtype=torch.float64))
        hx = [h.to(dt) for h in hx]
    return x.to(dt), lengths, hx


def _run_layer(torch, mod, case, x0, lengths, hx0, W, seed):
    """Forward (input built from fresh leaves), the loss on y/h_n/c_n, backward; the
    results and gradients, and the raw output (for PackedSequence metadata)."""
    rnn = torch.nn.utils.rnn
    bf = case["batch_first"]
    leaves = {}
    mode = case["input"]
    if mode == "pack_sequence":
        seqs = []
        for j, n in enumerate(lengths):
            xj = (x0[j, :n] if bf else x0[:n, j]).clone().requires_grad_()
            leaves[f"x{j}"] = xj
            seqs.append(xj)
        inp = rnn.pack_sequence(seqs, enforce_sorted=False)
    else:
        x = x0.clone().requires_grad_()
        leaves["x"] = x
        if mode in ("packed_unsorted", "packed_sorted"):
            inp = rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=bf,
                                           enforce_sorted=mode == "packed_sorted")
        else:
            inp = x
    if hx0 is None:
        out, state = mod(inp)
    else:
        hx = [h.clone().requires_grad_() for h in hx0]
        leaves["h0"] = hx[0]
        if len(hx) == 2:
            leaves["c0"] = hx[1]
        out, state = mod(inp, tuple(hx) if len(hx) == 2 else hx[0])
    if isinstance(out, rnn.PackedSequence):
        y, lens = rnn.pad_packed_sequence(out, batch_first=bf, total_length=T)
        assert lens.tolist() == list(lengths)
    else:
        assert mode not in ("packed_unsorted", "packed_sorted", "pack_sequence")
        y = out
    h_n, c_n = _split(state)
    results = {"y": y, "h_n": h_n}
    if c_n is not None:
        results["c_n"] = c_n
    return _loss_and_grads(torch, mod, results, leaves, W, seed), out


@pytest.mark.parametrize("case", CASES, ids=[_case_id(i, c) for i, c in enumerate(CASES)])
def test_layer_parity(torch, frt, case):
    seed = 100 + CASES.index(case)
    cls, kw = _torch_layer(torch, case)
    torch.manual_seed(seed)
    ref = cls(I, H, **kw)
    if seed % 2:  # both ways of making ours: sharing a copy's Parameters, or loading
        ours = frt.from_torch(copy.deepcopy(ref))
    else:
        ours = getattr(frt, cls.__name__)(I, H, **kw)
        ours.load_state_dict(ref.state_dict())
    assert type(ours) is getattr(frt, cls.__name__) and isinstance(ours, cls)
    assert type(ref) is cls
    if case["dropout"]:
        ref.eval()
        ours.eval()
    assert ours.training == ref.training
    x0, lengths, hx0 = _layer_problem(torch, case, seed)
    W = {}
    want, ref_out = _run_layer(torch, ref, case, x0, lengths, hx0, W, seed)
    got, our_out = _run_layer(torch, ours, case, x0, lengths, hx0, W, seed)
    assert type(our_out) is type(ref_out)
    if isinstance(ref_out, torch.nn.utils.rnn.PackedSequence):
        assert torch.equal(our_out.batch_sizes, ref_out.batch_sizes)
        for a, b in ((our_out.sorted_indices, ref_out.sorted_indices),
                     (our_out.unsorted_indices, ref_out.unsorted_indices)):
            assert (a is None and b is None) or torch.equal(a, b)
    for k, v in want.items():
        assert got[k].dtype == v.dtype, k
    _check(got, want, TOL[case["dtype"]], "layers", case["dtype"], _case_id(seed - 100, case))


# ============================================================ 1b. cells
CELL_KINDS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
STEPS = 4


def _torch_cell(torch, kind):
    if kind == "lstm":
        return torch.nn.LSTMCell, {}
    if kind == "gru":
        return torch.nn.GRUCell, {}
    return torch.nn.RNNCell, {"nonlinearity": kind[4:]}


def _run_cell(torch, mod, kind, xs0, hx0, W, seed):
    """STEPS unrolled steps (hx None or given at the first), the loss on every step's
    states, backward through all steps."""
    xs = xs0.clone().requires_grad_()
    leaves = {"x": xs}
    is_lstm = kind == "lstm"
    if hx0 is None:
        state = None
    else:
        hx = [h.clone().requires_grad_() for h in hx0]
        leaves["h0"] = hx[0]
        if is_lstm:
            leaves["c0"] = hx[1]
        state = tuple(hx) if is_lstm else hx[0]
    results = {}
    for t in range(STEPS):
        state = mod(xs[t]) if state is None else mod(xs[t], state)
        h, c = _split(state)
        results[f"h{t}"] = h
        if c is not None:
            results[f"c{t}"] = c
    return _loss_and_grads(torch, mod, results, leaves, W, seed)


CELL_CASES = list(itertools.product(CELL_KINDS, (True, False), (True, False), (True, False),
                                    ("f32", "f64")))


@pytest.mark.parametrize(("kind", "bias", "batched", "hx", "dtype"), CELL_CASES,
                         ids=["-".join([k, d, "bias" if b else "nobias",
                                        "batched" if bt else "unbatched",
                                        "hx" if h else "nohx"])
                              for k, b, bt, h, d in CELL_CASES])
def test_cell_parity(torch, frt, kind, bias, batched, hx, dtype):
    seed = 500 + CELL_CASES.index((kind, bias, batched, hx, dtype))
    dt = _tdtype(torch, dtype)
    cls, kw = _torch_cell(torch, kind)
    torch.manual_seed(seed)
    ref = cls(I, H, bias=bias, dtype=dt, **kw)
    if seed % 2:
        ours = frt.from_torch(copy.deepcopy(ref))
    else:
        ours = getattr(frt, cls.__name__)(I, H, bias=bias, dtype=dt, **kw)
        ours.load_state_dict(ref.state_dict())
    assert type(ours) is getattr(frt, cls.__name__)
    g = torch.Generator().manual_seed(seed)
    lead = (B,) if batched else ()
    xs0 = torch.randn((STEPS,) + lead + (I,), generator=g, dtype=torch.float64).to(dt)
    hx0 = None
    if hx:
        hx0 = [0.5 * torch.randn(lead + (H,), generator=g, dtype=torch.float64).to(dt)
               for _ in range(2 if kind == "lstm" else 1)]
    W = {}
    want = _run_cell(torch, ref, kind, xs0, hx0, W, seed)
    got = _run_cell(torch, ours, kind, xs0, hx0, W, seed)
    _check(got, want, TOL[dtype], "cells", dtype, f"{kind} {dtype}")


# ============================================================ 1c. inference
def _inference_modules(torch):
    """name -> (torch.nn module factory (dtype) , input factory (dtype, generator))."""
    rnn = torch.nn.utils.rnn

    def padded(shape):
        return lambda dt, g: (torch.randn(shape, generator=g, dtype=torch.float64).to(dt),)

    def packed(dt, g):
        x = torch.randn(T, B, I, generator=g, dtype=torch.float64).to(dt)
        return (rnn.pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False),)

    def lstm_hx(dt, g):
        x = torch.randn(B, T, I, generator=g, dtype=torch.float64).to(dt)
        h = torch.randn(4, B, P, generator=g, dtype=torch.float64).to(dt)
        c = torch.randn(4, B, H, generator=g, dtype=torch.float64).to(dt)
        return x, (h, c)

    return {
        "lstm_L2_bi_proj_bf_hx": (lambda dt: torch.nn.LSTM(I, H, 2, batch_first=True,
                                                           bidirectional=True, proj_size=P,
                                                           dtype=dt), lstm_hx),
        "gru_L3_drop_eval": (lambda dt: torch.nn.GRU(I, H, 3, dropout=0.3, dtype=dt).eval(),
                             padded((T, B, I))),
        "rnn_relu_bi_packed": (lambda dt: torch.nn.RNN(I, H, 2, nonlinearity="relu",
                                                       bidirectional=True, dtype=dt), packed),
        "rnn_tanh_unbatched": (lambda dt: torch.nn.RNN(I, H, dtype=dt), padded((T, I))),
        "lstm_cell": (lambda dt: torch.nn.LSTMCell(I, H, dtype=dt), padded((B, I))),
        "gru_cell": (lambda dt: torch.nn.GRUCell(I, H, dtype=dt), padded((B, I))),
        "rnn_cell_relu": (lambda dt: torch.nn.RNNCell(I, H, nonlinearity="relu", dtype=dt),
                          padded((I,))),
    }


INFERENCE_NAMES = ("lstm_L2_bi_proj_bf_hx", "gru_L3_drop_eval", "rnn_relu_bi_packed",
                   "rnn_tanh_unbatched", "lstm_cell", "gru_cell", "rnn_cell_relu")


def _flat(torch, out):
    """Every tensor of a module's output, in order (PackedSequence: its data)."""
    if isinstance(out, torch.nn.utils.rnn.PackedSequence):
        return [out.data]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(torch, o)]
    return [out]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("ctx", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("name", INFERENCE_NAMES)
def test_inference_parity(torch, frt, name, ctx, dtype):
    make, inputs = _inference_modules(torch)[name]
    dt = _tdtype(torch, dtype)
    torch.manual_seed(7)
    ref = make(dt)
    ours = frt.replace_rnns(copy.deepcopy(ref))
    assert type(ours).__module__.startswith("fusedrnn.torch")
    args = inputs(dt, torch.Generator().manual_seed(8))
    context = torch.no_grad if ctx == "no_grad" else torch.inference_mode
    with context():
        want = _flat(torch, ref(*args))
        got = _flat(torch, ours(*args))
    assert len(got) == len(want)
    for t in got:
        assert not t.requires_grad
        if ctx == "inference_mode":
            assert t.is_inference()
    _check({str(i): t for i, t in enumerate(got)}, {str(i): t for i, t in enumerate(want)},
           TOL[dtype], "inference", dtype, f"{name} {ctx}")
    # a second call reuses the packed weights: the same results
    with context():
        again = _flat(torch, ours(*args))
    for a, b in zip(again, got):
        assert torch.equal(a, b)


# ============================================================ 2. dropout in training
def _dropout_layer(torch, frt, kind, dtype="f64", dropout=0.5, num_layers=3, **kw):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(kind, torch.nn.RNN)
    if kind.startswith("rnn_"):
        kw["nonlinearity"] = kind[4:]
    torch.manual_seed(11)
    ref = cls(I, H, num_layers, dropout=dropout, dtype=_tdtype(torch, dtype), **kw)
    return ref, frt.from_torch(copy.deepcopy(ref))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dropout_training_reproducible_under_seed(torch, frt, kind):
    _, ours = _dropout_layer(torch, frt, kind, bidirectional=True)
    assert ours.training
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    y1, s1 = ours(x)
    torch.manual_seed(5)
    y2, s2 = ours(x)
    torch.manual_seed(6)
    y3, _ = ours(x)
    assert torch.equal(y1, y2)
    for a, b in zip(_flat(torch, s1), _flat(torch, s2)):
        assert torch.equal(a, b)
    assert not torch.allclose(y1, y3)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_dropout_differs_in_training_equal_in_eval(torch, frt, kind):
    ref, ours = _dropout_layer(torch, frt, kind)
    no_drop = frt.from_torch(copy.deepcopy(ref))
    no_drop.dropout = 0.0
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    y_drop = ours(x)[0]
    y_plain = no_drop(x)[0]
    assert not torch.allclose(y_drop, y_plain)
    # in eval mode: no dropout, equal to the dropout-free module and to torch.nn
    for m in (ref, ours, no_drop):
        m.eval()
    with torch.no_grad():
        y_ref, y_ours, y_nd = ref(x)[0], ours(x)[0], no_drop(x)[0]
    _check({"y": y_ours, "y_nd": y_nd}, {"y": y_ref, "y_nd": y_ref}, TOL["f64"], "dropout",
           "f64")
    # and without no_grad (the autograd path) in eval
    _check({"y": ours(x)[0]}, {"y": ref(x)[0]}, TOL["f64"], "dropout", "f64")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dropout_one_layer_is_ignored(torch, frt, kind):
    """As torch.nn (apart from its warning): dropout acts between layers only, so one
    layer in training mode with dropout is the layer without; the last layer's output
    is never dropped."""
    ref, ours = _dropout_layer(torch, frt, kind, num_layers=1, dropout=0.9)
    assert ours.training and ours.dropout == 0.9
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    W = {}
    want = _loss_and_grads(torch, ref, dict(zip(("y", "h"), _flat(torch, ref(x)))), {}, W, 4)
    got = _loss_and_grads(torch, ours, dict(zip(("y", "h"), _flat(torch, ours(x)))), {}, W, 4)
    _check(got, want, TOL["f64"], "dropout", "f64", kind)


def _stacked_reference(torch, ref, dtype, x, packed, bf, seed):
    """The one-layer torch.nn modules of ``ref`` (weights copied) run one after the
    other with F.dropout(p, training=True) on the contiguous time-major layer output
    between them, its masks drawn after ``torch.manual_seed(seed)``, as fusedrnn.torch
    draws them; y, h_n, c_n and the layers' modules."""
    F = torch.nn.functional
    cls = type(ref)
    D = 2 if ref.bidirectional else 1
    kw = {"nonlinearity": ref.nonlinearity} if cls is torch.nn.RNN else {}
    layers, hs, cs = [], [], []
    for layer in range(ref.num_layers):  # made first: their initialisation draws too
        m = cls(ref.input_size if layer == 0 else D * ref.hidden_size, ref.hidden_size,
                bidirectional=ref.bidirectional, dtype=_tdtype(torch, dtype), **kw)
        m.load_state_dict({k.replace(f"_l{layer}", "_l0"): v.detach().clone()
                           for k, v in ref.state_dict().items() if f"_l{layer}" in k})
        layers.append(m)
    torch.manual_seed(seed)
    h = x if (packed or not bf) else x.transpose(0, 1).contiguous()
    for layer, m in enumerate(layers):
        h, state = m(h)
        hn, cn = _split(state)
        hs.append(hn)
        if cn is not None:
            cs.append(cn)
        if layer < ref.num_layers - 1:
            if packed:
                h = torch.nn.utils.rnn.PackedSequence(F.dropout(h.data, ref.dropout, True),
                                                      h.batch_sizes, h.sorted_indices,
                                                      h.unsorted_indices)
            else:
                h = F.dropout(h.contiguous(), ref.dropout, True)
    if not packed and bf:
        h = h.transpose(0, 1)
    return h, torch.cat(hs), (torch.cat(cs) if cs else None), layers


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_dropout_training_gradients_match_same_masks(torch, frt, kind, packed, dtype):
    bf = not packed
    ref, ours = _dropout_layer(torch, frt, kind, dtype, dropout=0.4, bidirectional=True,
                               batch_first=bf)
    rnn = torch.nn.utils.rnn
    dt = _tdtype(torch, dtype)
    x0 = torch.randn(B, T, I, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(9)).to(dt)
    W = {}

    def inputs():
        x = x0.clone().requires_grad_()
        if packed:
            return x, rnn.pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=True,
                                               enforce_sorted=False)
        return x, x

    def unpad(y):
        return rnn.pad_packed_sequence(y, batch_first=True, total_length=T)[0] if packed \
            else y

    # the reference: one-layer modules, masks drawn from seed 21
    x, inp = inputs()
    y, h_n, c_n, layers = _stacked_reference(torch, ref, dtype, inp, packed, bf, 21)
    res = {"y": unpad(y), "h_n": h_n} | ({"c_n": c_n} if c_n is not None else {})
    loss = sum((v * _weights_for(torch, W, k, v, 21)).sum() for k, v in res.items())
    loss.backward()
    want = {k: v.detach() for k, v in res.items()} | {"d_x": x.grad}
    for layer, m in enumerate(layers):
        for n, p in m.named_parameters():
            want["d_" + n.replace("_l0", f"_l{layer}")] = p.grad
    # ours: the same seed
    x, inp = inputs()
    torch.manual_seed(21)
    y, state = ours(inp)
    h_n, c_n = _split(state)
    res = {"y": unpad(y), "h_n": h_n} | ({"c_n": c_n} if c_n is not None else {})
    got = _loss_and_grads(torch, ours, res, {"x": x}, W, 21)
    want = {k: want[k] for k in got}  # parameter order: ours's named_parameters
    for k, v in got.items():
        assert torch.isfinite(v).all(), k
    _check(got, want, TOL[dtype], "dropout", dtype, f"{kind} packed={packed}")
    # and the masks did drop something: the dropout-free output differs
    no_drop = frt.from_torch(copy.deepcopy(ref))
    no_drop.dropout = 0.0
    with torch.no_grad():
        assert not torch.allclose(unpad(no_drop(inp)[0]), got["y"])


# ============================================================ 3. training loop
NB, NT, NF, NH, NC = 24, 8, 5, 16, 3  # batch, steps, features, hidden, classes
TRAIN_STEPS = 20


def _classifier(torch, kind, packed):
    """Many-to-one: (B, T, F) -> RNN (batch_first; one layer) -> last step's output, or
    with variable lengths (packed; two layers) the last layer's h_n -> Linear -> logits
    over NC classes."""
    rnn_utils = torch.nn.utils.rnn

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
            self.rnn = cls(NF, NH, num_layers=1 if not packed else 2, batch_first=True)
            self.head = torch.nn.Linear(NH, NC)

        def forward(self, x, lengths=None):
            if lengths is None:
                out, _ = self.rnn(x)
                summary = out[:, -1]
            else:
                seq = rnn_utils.pack_padded_sequence(x, lengths, batch_first=True,
                                                     enforce_sorted=False)
                _, state = self.rnn(seq)
                summary = _split(state)[0][-1]
            return self.head(summary)

    return Classifier()


def _dataset(torch, dtype, packed):
    """A fixed learnable problem: the class is the argmax over the first NC features of
    their sum over the sequence's valid steps."""
    g = torch.Generator().manual_seed(31)
    x = torch.randn(NB, NT, NF, generator=g, dtype=torch.float64)
    if packed:
        lengths = torch.randint(2, NT + 1, (NB,), generator=g)
        lengths[0] = NT
        mask = (torch.arange(NT)[None, :] < lengths[:, None]).to(x.dtype)
        x = x * mask[:, :, None]
    else:
        lengths = None
    labels = x[:, :, :NC].sum(1).argmax(1)
    return x.to(_tdtype(torch, dtype)), lengths, labels


def _train(torch, model, opt_name, lr, x, lengths, labels):
    if opt_name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(TRAIN_STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, lengths), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


# (kind, packed, optimizer, learning rate): rates at which each model learns in 20 steps
TRAIN_CASES = [("lstm", False, "adam", 1e-2), ("lstm", False, "sgd", 0.5),
               ("gru", False, "adam", 1e-2), ("gru", False, "sgd", 0.5),
               ("lstm", True, "adam", 1e-2), ("lstm", True, "sgd", 1.0),
               ("gru", True, "adam", 1e-2), ("gru", True, "sgd", 0.5)]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize(("kind", "packed", "opt", "lr"), TRAIN_CASES,
                         ids=[f"{k}-{'packed' if p else 'padded'}-{o}"
                              for k, p, o, _ in TRAIN_CASES])
def test_training_loss_curves_match(torch, frt, kind, packed, opt, lr, dtype):
    torch.manual_seed(41)
    ref = _classifier(torch, kind, packed).to(_tdtype(torch, dtype))
    ours = frt.replace_rnns(copy.deepcopy(ref))
    assert type(ours.rnn) is getattr(frt, kind.upper())
    assert type(ref.rnn) is getattr(torch.nn, kind.upper())
    x, lengths, labels = _dataset(torch, dtype, packed)
    want = _train(torch, ref, opt, lr, x, lengths, labels)
    got = _train(torch, ours, opt, lr, x, lengths, labels)
    err = np.abs(got - want) / np.abs(want)
    key = ("training", dtype)
    ERRS[key] = max(ERRS.get(key, 0.0), float(err.max()))
    assert err.max() <= CURVE_TOL[dtype], f"loss curves differ: {got} vs {want}"
    # the models learned (so that the comparison could fail)
    assert want[-1] < 0.75 * want[0] and got[-1] < 0.75 * got[0], (want, got)
    # and end with the same weights
    for (n, p), (n2, q) in zip(ref.named_parameters(), ours.named_parameters()):
        assert n == n2
        e = _err(q, p)
        ERRS[("training weights", dtype)] = max(ERRS.get(("training weights", dtype), 0.0), e)
        assert e <= CURVE_TOL[dtype], n

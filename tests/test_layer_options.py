"""The layers' options: num_layers, bidirectional, batch_first, bias, lengths=, proj_size
(LSTM), dropout (training) and GRU reset_after=False.

1. PyTorch parity (forward and every gradient) over a pairwise covering sample of the
   product of the options (every pair of option values appears together in at least one
   case, per dtype; test_pairwise_coverage checks it).
2. The float64 NumPy reference (``reference.stack_forward`` / ``stack_backward``) for every
   kind, GRU reset_after=False included, with the training forward's dropout masks.
3. lengths= semantics; 4. dropout; 5. errors that name the argument; 6. state_dict names,
   shapes and order as torch.nn's; 7. unbatched input of a stacked bidirectional layer.

Tolerances, norm-wise relative ``||ours - oracle|| / ||oracle||`` (docs/numerics.md): float32
1e-5 for outputs and states, 1e-4 for gradients; float64 1e-12.  The torch tests skip
without torch and fail under FUSEDRNN_REQUIRE_TORCH=1 (the ``torch`` fixture).
"""

from __future__ import annotations


import numpy as np
import pytest
from _util import rel_err
from _pairwise import all_cases, assert_covers, pairwise_cases

import fusedrnn as fr
from fusedrnn import reference

TOL = {
    np.float32: {"out": 1e-5, "grad": 1e-4},
    np.float64: {"out": 1e-12, "grad": 1e-12},
}
DTYPES = {"f32": np.float32, "f64": np.float64}

# Sizes: small, so that the file runs in seconds.  P < H for the LSTM projection.
T, B, I, H, P = 5, 4, 3, 5, 3
LENGTHS = np.array([3, 5, 1, 4])  # unsorted, with a 1 and a T
assert LENGTHS.shape == (B,) and LENGTHS.min() == 1 and LENGTHS.max() == T

# kind -> (class, constructor keywords, reference kind, torch class name or None)
KINDS = {
    "lstm": (fr.LSTM, {}, "lstm", "LSTM"),
    "lstm_proj": (fr.LSTM, {"proj_size": P}, "lstm", "LSTM"),
    "gru": (fr.GRU, {}, "gru", "GRU"),
    "gru_reset_before": (fr.GRU, {"reset_after": False}, "gru_reset_before", None),
    "rnn_tanh": (fr.RNN, {"nonlinearity": "tanh"}, "rnn_tanh", "RNN"),
    "rnn_relu": (fr.RNN, {"nonlinearity": "relu"}, "rnn_relu", "RNN"),
}


def make(kind, dtype=np.float64, seed=0, **opts):
    cls, kw, _, _ = KINDS[kind]
    return cls(I, H, dtype=dtype, seed=seed, **{**kw, **opts})


def is_lstm(layer):
    return isinstance(layer, fr.LSTM)


def split(state):
    """(h, c) of an LSTM state, (h, None) otherwise."""
    return state if isinstance(state, tuple) else (state, None)


def state_shapes(layer, batch=B, unbatched=False):
    LD = layer.num_layers * (2 if layer.bidirectional else 1)
    lead = (LD,) if unbatched else (LD, batch)
    return lead + (layer.proj_size or layer.hidden_size,), lead + (layer.hidden_size,)


def rand_state(rng, layer, batch=B, unbatched=False, scale=0.5):
    hs, cs = state_shapes(layer, batch, unbatched)
    h = (scale * rng.standard_normal(hs)).astype(layer.dtype)
    if is_lstm(layer):
        return h, (scale * rng.standard_normal(cs)).astype(layer.dtype)
    return h


def x_shape(layer, batch=B, steps=T):
    return (batch, steps, layer.input_size) if layer.batch_first else (steps, batch,
                                                                         layer.input_size)


def y_shape(layer, batch=B, steps=T):
    D = 2 if layer.bidirectional else 1
    return x_shape(layer, batch, steps)[:-1] + (D * (layer.proj_size or layer.hidden_size),)


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def run(layer, x, hx, dy, dstate, lengths=None):
    """Training forward then backward; a dict of every result by name (y, h_n, c_n, dx,
    dh0, dc0, then the parameter gradients under their state_dict names), and the tape."""
    y, state, tape = layer.forward(x, hx, lengths=lengths, train=True)
    dx, dstate0, grads = layer.backward(tape, dy, dstate)
    (h_n, c_n), (dh0, dc0) = split(state), split(dstate0)
    out = {"y": y, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0, **grads}
    assert list(grads) == list(layer.state_dict())
    return {k: v for k, v in out.items() if v is not None}, tape


def run_reference(kind, layer, x, hx, dy, dstate, lengths=None, masks=None):
    """reference.stack_forward / stack_backward in float64 on the layer's weights; the
    same dict as ``run``, in the layer's layout."""
    f64 = np.float64
    bf = layer.batch_first

    def tm(a):  # the caller's layout -> time-major float64
        a = np.asarray(a, f64)
        return a.transpose(1, 0, 2) if bf else a

    params = {k: v.astype(f64) for k, v in layer.state_dict().items()}
    h0, c0 = split(hx) if hx is not None else (None, None)
    cast = (lambda a: None if a is None else np.asarray(a, f64))
    ref_hx = (cast(h0), cast(c0)) if is_lstm(layer) else cast(h0)
    y, h_n, c_n, cache = reference.stack_forward(
        KINDS[kind][2], tm(x), ref_hx, params, num_layers=layer.num_layers,
        bidirectional=layer.bidirectional, lengths=lengths,
        dropout_masks=[m.astype(f64) for m in masks] if masks else None)
    dh, dc = split(dstate) if dstate is not None else (None, None)
    g = reference.stack_backward(cache, tm(dy), cast(dh), cast(dc))
    out = {"y": tm(y), "h_n": h_n, "c_n": c_n, "dx": tm(g.pop("dx")), "dh0": g.pop("dh0"),
           "dc0": g.pop("dc0", None)}
    out.update((k, g[k]) for k in params)
    return {k: v for k, v in out.items() if v is not None}


def check_close(ours, oracle, tol, what=""):
    """Every entry of two ``run`` dicts, same keys, norm-wise relative error within tol
    (outputs and states: tol['out']; gradients: tol['grad'])."""
    assert list(ours) == list(oracle), f"{what}: keys {list(ours)} != {list(oracle)}"
    for k, ref in oracle.items():
        a = ours[k]
        assert a.shape == ref.shape, f"{what} {k}: shape {a.shape} != {ref.shape}"
        t = tol["out"] if k in ("y", "h_n", "c_n") else tol["grad"]
        e = rel_err(a, ref)
        assert e <= t, f"{what} {k}: relative error {e:.3e} > {t:.1e}"


def check_equal(a, b, what=""):
    assert list(a) == list(b), f"{what}: keys {list(a)} != {list(b)}"
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what} {k}")


def problem(layer, seed, hx=True):
    """Random x, hx, dy, dstate for the layer (float values of its dtype)."""
    rng = np.random.default_rng(seed)
    dt = layer.dtype
    x = rand(rng, x_shape(layer), dt)
    h = rand_state(rng, layer) if hx else None
    dy = rand(rng, y_shape(layer), dt)
    dstate = rand_state(rng, layer, scale=1.0)
    return x, h, dy, dstate


# ============================================================ 1. PyTorch parity, pairwise
FACTORS = {
    "kind": ("lstm", "gru", "rnn_tanh", "rnn_relu"),
    "num_layers": (1, 3),
    "bidirectional": (False, True),
    "batch_first": (False, True),
    "bias": (True, False),
    "lengths": (False, True),  # None / LENGTHS (unsorted, a 1 and a T)
    "proj_size": (0, P),  # > 0: LSTM only
    "hx": (True, False),  # initial state given / None (zeros)
}


def _valid(case):
    return case["proj_size"] == 0 or case["kind"] == "lstm"


PAIRWISE = {np.float32: pairwise_cases(FACTORS, _valid),
            np.float64: pairwise_cases(FACTORS, _valid, reverse=True)}


def _case_id(c):
    parts = [c["kind"], f"L{c['num_layers']}"]
    parts += [name for name, on in (("bi", c["bidirectional"]), ("bf", c["batch_first"]),
                                    ("nobias", not c["bias"]), ("len", c["lengths"]),
                                    ("nohx", not c["hx"])) if on]
    if c["proj_size"]:
        parts.append(f"P{c['proj_size']}")
    return "-".join(parts)


PARITY_PARAMS = [pytest.param(dt, c, id=f"{name}-{i}-{_case_id(c)}")
                 for name, dt in DTYPES.items() for i, c in enumerate(PAIRWISE[dt])]


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_pairwise_coverage(dtype):
    """The parity sample covers every pair of option values, only valid cases, no
    duplicates, and is far smaller than the full product."""
    cases = PAIRWISE[dtype]
    assert_covers(cases, FACTORS, _valid)
    assert len(cases) <= 12 < len(all_cases(FACTORS, _valid))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize(("dtype", "case"), PARITY_PARAMS)
def test_torch_parity_pairwise(torch, dtype, case):
    kind = case["kind"]
    cls, kw, _, tname = KINDS[kind]
    L, bi, bf = case["num_layers"], case["bidirectional"], case["batch_first"]
    opts = dict(num_layers=L, bidirectional=bi, batch_first=bf, bias=case["bias"])
    if case["proj_size"]:
        opts["proj_size"] = case["proj_size"]
    seed = 100 + PAIRWISE[dtype].index(case)
    ours = make(kind, dtype, seed, **opts)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    theirs = getattr(torch.nn, tname)(I, H, dtype=tdtype, **kw, **opts)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    tsd = theirs.state_dict()
    assert list(tsd) == list(ours.state_dict())

    lengths = LENGTHS if case["lengths"] else None
    x, hx, dy, dstate = problem(ours, seed + 1, hx=case["hx"])
    got, _ = run(ours, x, hx, dy, dstate, lengths=lengths)

    # torch; with hx None it still gets zeros (with grad) to compare dh0 / dc0
    hs, cs = state_shapes(ours)
    h0, c0 = split(hx) if hx is not None else (np.zeros(hs, dtype), None)
    if c0 is None:  # not an LSTM, or hx None: torch's c0 is unused / zeros
        c0 = np.zeros(cs, dtype)
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.as_tensor(lengths), batch_first=bf, enforce_sorted=False)
    yt, st = theirs(inp, (h0t, c0t) if is_lstm(ours) else h0t)
    if lengths is not None:
        yt, _ = torch.nn.utils.rnn.pad_packed_sequence(yt, batch_first=bf, total_length=T)
    h_nt, c_nt = st if is_lstm(ours) else (st, None)
    dh, dc = split(dstate)
    loss = (yt * torch.from_numpy(dy)).sum() + (h_nt * torch.from_numpy(dh)).sum()
    if is_lstm(ours):
        loss = loss + (c_nt * torch.from_numpy(dc)).sum()
    loss.backward()

    want = {"y": yt, "h_n": h_nt, "c_n": c_nt, "dx": xt.grad, "dh0": h0t.grad,
            "dc0": c0t.grad if is_lstm(ours) else None}
    want.update((k, p.grad) for k, p in theirs.named_parameters())
    want = {k: v.detach().numpy() for k, v in want.items() if v is not None}
    for k, v in want.items():
        assert got[k].dtype == v.dtype, k
    check_close(got, want, TOL[dtype], f"torch parity {_case_id(case)}")


# ===================================================== 2. the float64 NumPy reference
REF_CONFIGS = {
    # name: (layer options, lengths, dropout)
    "L2-bi-len-drop": (dict(num_layers=2, bidirectional=True), LENGTHS, 0.4),
    "L3-bf-nobias-drop": (dict(num_layers=3, batch_first=True, bias=False), None, 0.25),
    "L2-bi-bf-len": (dict(num_layers=2, bidirectional=True, batch_first=True), LENGTHS, 0.0),
}


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("config", list(REF_CONFIGS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_reference(kind, config, dtype):
    """Outputs, states and every gradient against reference.stack_forward/backward
    (float64), with the training forward's own dropout masks."""
    opts, lengths, p = REF_CONFIGS[config]
    seed = 7 + list(KINDS).index(kind)
    layer = make(kind, dtype, seed, dropout=p, **opts)
    x, hx, dy, dstate = problem(layer, seed + 1)
    got, tape = run(layer, x, hx, dy, dstate, lengths=lengths)
    masks = tape.dropout_masks
    assert len(masks) == (layer.num_layers - 1 if p > 0 else 0)
    want = run_reference(kind, layer, x, hx, dy, dstate, lengths, masks)
    check_close(got, want, TOL[dtype], f"{kind} {config} vs reference")


# =================================================================== 3. lengths
STACK = dict(num_layers=2, bidirectional=True)
ALL_KINDS = list(KINDS)


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_lengths_outputs_past_end_are_zero(kind, batch_first):
    layer = make(kind, np.float32, 1, batch_first=batch_first, **STACK)
    x, hx, dy, dstate = problem(layer, 2)
    for y in (layer.forward(x, hx, lengths=LENGTHS, train=True)[0],
              layer(x, hx, lengths=LENGTHS)[0]):
        y_tm = y.transpose(1, 0, 2) if batch_first else y
        for b, n in enumerate(LENGTHS):
            assert np.all(y_tm[n:, b] == 0), f"row {b}: nonzero output past its length {n}"
            assert np.any(y_tm[n - 1, b] != 0)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_lengths_equal_each_sequence_alone(kind):
    """A batch with lengths = each sequence run alone on x[:len] (bidirectional, 2 layers):
    outputs, final states, dx, dh0, dc0; the parameter gradients are the sums."""
    layer = make(kind, np.float64, 3, **STACK)
    x, hx, dy, dstate = problem(layer, 4)
    got, _ = run(layer, x, hx, dy, dstate, lengths=LENGTHS)
    h0, c0 = split(hx)
    dh, dc = split(dstate)
    sums = {k: np.zeros_like(v) for k, v in layer.state_dict().items()}
    tol = TOL[np.float64]
    for b, n in enumerate(LENGTHS):
        hb = (h0[:, b:b + 1], c0[:, b:b + 1]) if c0 is not None else h0[:, b:b + 1]
        db = (dh[:, b:b + 1], dc[:, b:b + 1]) if dc is not None else dh[:, b:b + 1]
        alone, _ = run(layer, x[:n, b:b + 1], hb, dy[:n, b:b + 1], db)
        row = {"y": got["y"][:n, b:b + 1], "h_n": got["h_n"][:, b:b + 1],
               "dx": got["dx"][:n, b:b + 1], "dh0": got["dh0"][:, b:b + 1]}
        if c0 is not None:
            row["c_n"], row["dc0"] = got["c_n"][:, b:b + 1], got["dc0"][:, b:b + 1]
        check_close(row, {k: alone[k] for k in row}, tol, f"{kind} row {b} (length {n})")
        for k in sums:
            sums[k] += alone[k]
    check_close({k: got[k] for k in sums}, sums, tol, f"{kind} parameter gradients")


LENGTH_PATTERNS = {
    "all2": [2, 2, 2, 2],  # all equal, shorter than T: the steps past 2 have no rows
    "all1": [1, 1, 1, 1],
    "ties": [5, 1, 5, 1],  # ties: torch's stable sort
    "ascending": [1, 2, 3, 4],
}


@pytest.mark.parametrize("lengths", list(LENGTH_PATTERNS.values()), ids=list(LENGTH_PATTERNS))
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_lengths_patterns_vs_reference(kind, lengths):
    layer = make(kind, np.float64, 50, dropout=0.3, **STACK)
    x, hx, dy, dstate = problem(layer, 51)
    lengths = np.array(lengths)
    got, tape = run(layer, x, hx, dy, dstate, lengths=lengths)
    want = run_reference(kind, layer, x, hx, dy, dstate, lengths, tape.dropout_masks)
    check_close(got, want, TOL[np.float64], f"{kind} lengths {list(lengths)}")


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_partial_gradients_vs_reference(kind):
    """dy None (zeros), dstate None, and for an LSTM (dh_n, None) / (None, dc_n)."""
    layer = make(kind, np.float64, 52, **STACK)
    x, hx, dy, dstate = problem(layer, 53)
    variants = [(None, dstate), (dy, None)]
    if is_lstm(layer):
        variants += [(dy, (dstate[0], None)), (dy, (None, dstate[1]))]
    for dy_v, ds_v in variants:
        got, _ = run(layer, x, hx, dy_v, ds_v, lengths=LENGTHS)
        want = run_reference(kind, layer, x, hx, np.zeros_like(dy) if dy_v is None else dy_v,
                             ds_v, LENGTHS)
        check_close(got, want, TOL[np.float64], f"{kind} partial gradients")


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_full_lengths_bit_identical_to_none(kind, dtype):
    layer = make(kind, dtype, 5, **STACK)
    x, hx, dy, dstate = problem(layer, 6)
    a, _ = run(layer, x, hx, dy, dstate, lengths=None)
    b, _ = run(layer, x, hx, dy, dstate, lengths=np.full(B, T))
    check_equal(a, b, f"{kind} lengths all T vs None")
    ya, sa = layer(x, hx)
    yb, sb = layer(x, hx, lengths=[T] * B)
    np.testing.assert_array_equal(ya, yb)
    for u, v in zip(split(sa), split(sb)):
        if u is not None:
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("kind", ["lstm_proj", "gru", "rnn_relu"])
def test_lengths_batch_first_equals_time_major(kind):
    tm = make(kind, np.float64, 8, **STACK)
    bf = make(kind, np.float64, 8, batch_first=True, **STACK)
    x, hx, dy, dstate = problem(tm, 9)
    a, _ = run(tm, x, hx, dy, dstate, lengths=LENGTHS)
    b, _ = run(bf, x.transpose(1, 0, 2), hx, dy.transpose(1, 0, 2), dstate, lengths=LENGTHS)
    for k in ("y", "dx"):
        b[k] = b[k].transpose(1, 0, 2)
    check_equal(a, b, f"{kind} batch_first vs time-major")


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_lengths_padded_dy_is_ignored(kind, batch_first):
    """dy at padded positions changes no gradient (bit for bit); dx there is exactly 0."""
    layer = make(kind, np.float32, 10, batch_first=batch_first, dropout=0.3, **STACK)
    x, hx, dy, dstate = problem(layer, 11)
    pad = np.arange(T)[:, None] >= LENGTHS[None, :]  # (T, B)
    if batch_first:
        pad = pad.T
    dy2 = dy.copy()
    dy2[pad] = 1e3 * np.random.default_rng(12).standard_normal(dy2[pad].shape)
    y, state, tape = layer.forward(x, hx, lengths=LENGTHS, train=True)
    dx, ds0, g = layer.backward(tape, dy, dstate)
    dx2, ds02, g2 = layer.backward(tape, dy2, dstate)
    assert np.all(dx[pad] == 0) and np.all(dx2[pad] == 0)
    assert np.any(dx[~pad] != 0)
    np.testing.assert_array_equal(dx, dx2)
    for u, v in zip(split(ds0), split(ds02)):
        if u is not None:
            np.testing.assert_array_equal(u, v)
    check_equal(g, g2, "parameter gradients")


@pytest.mark.parametrize("kind", ["lstm_proj", "gru_reset_before"])
def test_lengths_types(kind):
    """lengths as a list, np.int32, np.int64, np.uint8 and a tuple: the same numbers."""
    layer = make(kind, np.float32, 13, **STACK)
    x, hx, _, _ = problem(layer, 14)
    y0, s0 = layer(x, hx, lengths=LENGTHS)
    for lengths in (list(LENGTHS), tuple(int(n) for n in LENGTHS), LENGTHS.astype(np.int32),
                    LENGTHS.astype(np.int64), LENGTHS.astype(np.uint8)):
        y, s = layer(x, hx, lengths=lengths)
        np.testing.assert_array_equal(y, y0)
        for u, v in zip(split(s), split(s0)):
            if u is not None:
                np.testing.assert_array_equal(u, v)


def test_lengths_torch_tensor(torch):
    layer = make("lstm", np.float32, 15, **STACK)
    x, hx, dy, dstate = problem(layer, 16)
    a, _ = run(layer, x, hx, dy, dstate, lengths=LENGTHS)
    for t in (torch.as_tensor(LENGTHS), torch.as_tensor(LENGTHS, dtype=torch.int32)):
        b, _ = run(layer, x, hx, dy, dstate, lengths=t)
        check_equal(a, b, f"lengths as {t.dtype}")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_lengths_inference_equals_training(kind):
    """__call__(x, hx, lengths=...) gives the training forward's numbers."""
    layer = make(kind, np.float64, 17, **STACK)
    x, hx, _, _ = problem(layer, 18)
    y, s = layer(x, hx, lengths=LENGTHS)
    yt, st, _ = layer.forward(x, hx, lengths=LENGTHS, train=True)
    tol = TOL[np.float64]["out"]
    assert rel_err(y, yt) <= tol
    for u, v in zip(split(s), split(st)):
        if u is not None:
            assert rel_err(u, v) <= tol


# =================================================================== 4. dropout
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_dropout_inference_ignores_it(kind):
    """Weights depend on the seed only; train=False (and __call__) ignore dropout."""
    with_p = make(kind, np.float32, 20, dropout=0.5, **STACK)
    without = make(kind, np.float32, 20, dropout=0.0, **STACK)
    check_equal(with_p.state_dict(), without.state_dict(), "weights")
    x, hx, _, _ = problem(with_p, 21)
    for lengths in (None, LENGTHS):
        y0, s0 = without(x, hx, lengths=lengths)
        y1, s1, tape = with_p.forward(x, hx, lengths=lengths, train=False)
        assert tape is None
        for y, s in ((y1, s1), with_p(x, hx, lengths=lengths)):
            np.testing.assert_array_equal(y, y0)
            for u, v in zip(split(s), split(s0)):
                np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("kind", ["lstm_proj", "gru", "rnn_tanh"])
def test_dropout_training_reproducible_with_seed(kind):
    a = make(kind, np.float32, 22, dropout=0.5, **STACK)
    b = make(kind, np.float32, 22, dropout=0.5, **STACK)
    x, hx, dy, dstate = problem(a, 23)
    for _ in range(2):  # the first and the second training call agree too
        ra, ta = run(a, x, hx, dy, dstate, lengths=LENGTHS)
        rb, tb = run(b, x, hx, dy, dstate, lengths=LENGTHS)
        check_equal(ra, rb, "two layers with the same seed")
        assert len(ta.dropout_masks) == 1
        np.testing.assert_array_equal(ta.dropout_masks[0], tb.dropout_masks[0])
    c = make(kind, np.float32, 23, dropout=0.5, **STACK)
    c.load_state_dict(a.state_dict())  # same weights, another seed: other masks
    _, tc = c.forward(x, hx, train=True)[1:]
    assert not np.array_equal(tc.dropout_masks[0], ta.dropout_masks[0])


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_before", "rnn_relu"])
def test_dropout_successive_calls_differ_and_backward_uses_own_masks(kind):
    layer = make(kind, np.float64, 24, dropout=0.5, num_layers=3, bidirectional=True)
    x, hx, dy, dstate = problem(layer, 25)
    y1, _, t1 = layer.forward(x, hx, lengths=LENGTHS, train=True)
    y2, _, t2 = layer.forward(x, hx, lengths=LENGTHS, train=True)
    assert len(t1.dropout_masks) == len(t2.dropout_masks) == 2
    for m1, m2 in zip(t1.dropout_masks, t2.dropout_masks):
        assert m1.shape == m2.shape == (T, B, 2 * H)
        assert not np.array_equal(m1, m2)
    assert not np.array_equal(y1, y2)
    # backward of the first tape, after the second forward: the first forward's masks
    for tape, y in ((t1, y1), (t2, y2), (t1, y1)):
        dx, ds0, g = layer.backward(tape, dy, dstate)
        (dh0, dc0) = split(ds0)
        got = {"y": y, "dx": dx, "dh0": dh0, **({"dc0": dc0} if dc0 is not None else {}), **g}
        want = run_reference(kind, layer, x, hx, dy, dstate, LENGTHS, tape.dropout_masks)
        for k in ("h_n", "c_n"):
            want.pop(k, None)
        check_close(got, want, TOL[np.float64], "backward with the tape's own masks")


@pytest.mark.parametrize("kind", ["lstm_proj", "gru", "rnn_tanh"])
def test_dropout_never_after_the_last_layer(kind):
    layer = make(kind, np.float32, 26, dropout=0.5, bidirectional=True)  # num_layers=1
    x, hx, _, _ = problem(layer, 27)
    y, s, tape = layer.forward(x, hx, train=True)
    assert tape.dropout_masks == []
    y_inf, s_inf = layer(x, hx)
    tol = TOL[np.float32]["out"]
    assert rel_err(y, y_inf) <= tol
    for u, v in zip(split(s), split(s_inf)):
        if u is not None:
            assert rel_err(u, v) <= tol
    # 3 layers: two masks, on the outputs of layers 0 and 1 (the reference tests check
    # that the last layer's output is not masked)
    three = make(kind, np.float32, 26, dropout=0.5, num_layers=3, bidirectional=True)
    assert len(three.forward(x, train=True)[2].dropout_masks) == 2


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_dropout_one_zeroes_inputs_of_upper_layers(kind):
    """dropout=1.0: every mask is 0, so layer 1 sees zeros: its output is a one-layer
    run on zeros; dy reaches neither x nor layer 0's parameters."""
    layer = make(kind, np.float64, 28, dropout=1.0, **STACK)
    x, hx, dy, dstate = problem(layer, 29)
    got, tape = run(layer, x, hx, dy, None, lengths=LENGTHS)
    assert len(tape.dropout_masks) == 1 and not np.any(tape.dropout_masks[0])
    # layer 1 alone, on zeros, with layer 1's weights and initial states
    cls, kw, _, _ = KINDS[kind]
    top = cls(2 * (layer.proj_size or H), H, bidirectional=True, dtype=np.float64, **kw)
    sd = layer.state_dict()
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if "_l1" in k})
    h0, c0 = split(hx)
    top_hx = (h0[2:], c0[2:]) if c0 is not None else h0[2:]
    y_top, s_top = top(np.zeros((T, B, top.input_size)), top_hx, lengths=LENGTHS)
    tol = TOL[np.float64]
    assert rel_err(got["y"], y_top) <= tol["out"]
    assert rel_err(got["h_n"][2:], split(s_top)[0]) <= tol["out"]
    if c0 is not None:
        assert rel_err(got["c_n"][2:], s_top[1]) <= tol["out"]
    assert np.all(got["dx"] == 0)
    for k, v in got.items():
        if "_l0" in k:
            assert np.all(v == 0), k
    assert np.all(got["dh0"][:2] == 0)
    # against the reference with the zero masks
    want = run_reference(kind, layer, x, hx, dy, None, LENGTHS, tape.dropout_masks)
    check_close(got, want, tol, "dropout=1.0 vs reference")


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_mask_values_and_keep_fraction(p, dtype):
    layer = fr.GRU(3, 50, num_layers=2, bidirectional=True, dropout=p, dtype=dtype, seed=30)
    x = np.random.default_rng(31).standard_normal((40, 10, 3)).astype(dtype)
    _, _, tape = layer.forward(x, train=True)
    (m,) = tape.dropout_masks
    assert m.shape == (40, 10, 100) and m.dtype == dtype
    scale = dtype(1 / (1 - p))
    assert set(np.unique(m)) <= {dtype(0), scale}
    keep = np.count_nonzero(m) / m.size  # 40000 draws: std of the fraction <= 0.0025
    assert abs(keep - (1 - p)) < 0.02, keep


# =================================================================== 5. errors
def _raises(exc, arg, fn, *args, **kwargs):
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert arg in msg, f"message {msg!r} does not name {arg!r}"
    return msg


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_errors_lengths(kind):
    layer = make(kind, np.float32, 0, **STACK)
    x = np.zeros((T, B, I), np.float32)
    bad = {
        "zero": [3, 5, 0, 4],
        "above T": [3, T + 1, 1, 4],
        "negative": [3, 5, -1, 4],
        "too short": [3, 5, 1],
        "too long": [3, 5, 1, 4, 2],
        "2-D": [[3], [5], [1], [4]],
        "scalar": 3,
        "float": [3.0, 5.0, 1.0, 4.0],
    }
    for what, lengths in bad.items():
        for call in (lambda: layer(x, lengths=lengths),
                     lambda: layer.forward(x, lengths=lengths, train=True)):
            msg = _raises(ValueError, "lengths", call)
            assert msg.startswith("lengths"), (what, msg)
    msg = _raises(ValueError, "lengths", layer, np.zeros((T, I), np.float32), lengths=[T])
    assert "unbatched" in msg


def test_errors_states():
    lstm = make("lstm", np.float32, 0, **STACK)  # states (4, B, H)
    gru = make("gru", np.float32, 0, **STACK)
    proj = make("lstm_proj", np.float32, 0, **STACK)  # h (4, B, P), c (4, B, H)
    x = np.zeros((T, B, I), np.float32)
    z = (lambda *s: np.zeros(s, np.float32))
    # wrong number of layers * directions
    _raises(ValueError, "hx", gru, x, z(2, B, H))
    _raises(ValueError, "h_0", lstm, x, (z(2, B, H), z(4, B, H)))
    _raises(ValueError, "c_0", lstm, x, (z(4, B, H), z(2, B, H)))
    _raises(ValueError, "hx", make("rnn_relu", np.float32, 0, num_layers=3), x, z(1, B, H))
    # projection: h_0 has P columns, c_0 has H
    _raises(ValueError, "h_0", proj, x, (z(4, B, H), z(4, B, H)))
    _raises(ValueError, "c_0", proj, x, (z(4, B, P), z(4, B, P)))
    proj(x, (z(4, B, P), z(4, B, H)))  # the right shapes
    # dstate
    for layer in (lstm, gru, proj):
        _, _, tape = layer.forward(x, train=True)
        hs, cs = state_shapes(layer)
        if is_lstm(layer):
            _raises(ValueError, "dh_n", layer.backward, tape, None, (z(2, B, hs[-1]), None))
            _raises(ValueError, "dc_n", layer.backward, tape, None, (None, z(4, B, P - 1)))
            _raises(TypeError, "dstate", layer.backward, tape, None, z(*hs))
        else:
            _raises(ValueError, "dstate", layer.backward, tape, None, z(2, B, H))
        _raises(ValueError, "dy", layer.backward, tape, z(T, B, hs[-1]))
    _, _, tape = proj.forward(x, train=True)
    _raises(ValueError, "dh_n", proj.backward, tape, None, (z(4, B, H), None))


def test_errors_constructor():
    _raises(ValueError, "proj_size", fr.LSTM, I, H, proj_size=H)
    _raises(ValueError, "proj_size", fr.LSTM, I, H, proj_size=H + 1)
    _raises(ValueError, "proj_size", fr.LSTM, I, H, proj_size=-1)
    _raises(TypeError, "proj_size", fr.LSTM, I, H, proj_size=2.0)
    for cls in (fr.GRU, fr.RNN):
        msg = _raises(TypeError, "proj_size", cls, I, H, proj_size=2)
        assert "unexpected keyword" in msg
    for p in (-0.1, 1.01, float("nan"), float("inf"), True, "0.5", None):
        for cls in (fr.LSTM, fr.GRU, fr.RNN):
            _raises(ValueError, "dropout", cls, I, H, dropout=p)
    for name in ("bidirectional", "batch_first"):
        for v in (1, 0, "yes", None):
            for cls in (fr.LSTM, fr.GRU, fr.RNN):
                _raises(TypeError, name, cls, I, H, **{name: v})
    for v in (1, 0, "no", None):
        _raises(TypeError, "reset_after", fr.GRU, I, H, reset_after=v)
    for v in (0, -1):
        _raises(ValueError, "num_layers", fr.GRU, I, H, num_layers=v)
    _raises(TypeError, "num_layers", fr.GRU, I, H, num_layers=2.0)
    # the edge values are accepted
    fr.LSTM(I, H, proj_size=H - 1, dropout=1.0, num_layers=2)
    fr.GRU(I, H, dropout=0, reset_after=np.bool_(False), bidirectional=np.bool_(True))


def test_errors_load_state_dict():
    bi = make("lstm_proj", np.float32, 0, **STACK)
    uni = make("lstm_proj", np.float32, 1, num_layers=2)
    before = bi.state_dict()
    msg = _raises(ValueError, "state_dict", bi.load_state_dict, uni.state_dict())
    assert "missing keys" in msg and "weight_ih_l0_reverse" in msg and "weight_hr_l1_reverse" \
        in msg
    msg = _raises(ValueError, "state_dict", uni.load_state_dict, bi.state_dict())
    assert "unexpected keys" in msg and "_reverse" in msg
    for name in ("weight_hr_l0", "weight_hr_l1_reverse"):
        sd = bi.state_dict()
        sd[name] = np.zeros((H, P), np.float32)  # transposed
        _raises(ValueError, name, bi.load_state_dict, sd)
    sd = bi.state_dict()
    sd["weight_ih_l1"] = np.zeros((4 * H, 2 * H), np.float32)  # layer 1 reads 2 * P
    _raises(ValueError, "weight_ih_l1", bi.load_state_dict, sd)
    sd = bi.state_dict()
    sd.pop("weight_hr_l1")
    _raises(ValueError, "weight_hr_l1", bi.load_state_dict, sd)
    check_equal(bi.state_dict(), before, "nothing changes after a failed load")


def test_errors_assigning_parameters():
    layer = make("lstm_proj", np.float32, 0, **STACK)
    for name in ("weight_ih_l0", "weight_hh_l1_reverse", "weight_hr_l0", "bias_ih_l1_reverse",
                 "weight_hr_l1_reverse"):
        before = getattr(layer, name).copy()
        _raises(AttributeError, name, setattr, layer, name, np.zeros_like(before))
        np.testing.assert_array_equal(getattr(layer, name), before)
        with pytest.raises(ValueError):
            getattr(layer, name)[...] = 0  # read-only view


# ========================================================= 6. state_dict as torch.nn's
STATE_DICT_CONFIGS = {
    "lstm": (fr.LSTM, "LSTM", {}),
    "lstm_proj": (fr.LSTM, "LSTM", {"proj_size": P}),
    "lstm_proj_nobias": (fr.LSTM, "LSTM", {"proj_size": P, "bias": False}),
    "gru": (fr.GRU, "GRU", {}),
    "gru_nobias": (fr.GRU, "GRU", {"bias": False}),
    "rnn_relu": (fr.RNN, "RNN", {"nonlinearity": "relu"}),
}


@pytest.mark.parametrize("name", list(STATE_DICT_CONFIGS))
def test_state_dict_as_torch(torch, name):
    cls, tname, kw = STATE_DICT_CONFIGS[name]
    ours = cls(I, H, num_layers=2, bidirectional=True, seed=0, **kw)
    theirs = getattr(torch.nn, tname)(I, H, num_layers=2, bidirectional=True, **kw)
    ours_sd, torch_sd = ours.state_dict(), theirs.state_dict()
    assert [(k, v.shape) for k, v in ours_sd.items()] == \
        [(k, tuple(v.shape)) for k, v in torch_sd.items()]
    assert list(ours_sd) == [k for k, _ in theirs.named_parameters()]
    for k, v in ours_sd.items():  # the attributes too
        np.testing.assert_array_equal(getattr(ours, k), v)
    # from torch (tensors, and Parameters with requires_grad)
    for sd in (torch_sd, dict(theirs.named_parameters())):
        res = ours.load_state_dict(sd)
        assert list(res.missing_keys) == [] and list(res.unexpected_keys) == []
        for k, v in ours.state_dict().items():
            np.testing.assert_array_equal(v, sd[k].detach().numpy(), err_msg=k)
    # and the numbers then agree with torch's module (inference)
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
    y, _ = ours(x)
    with torch.no_grad():
        yt, _ = theirs(torch.from_numpy(x))
    assert rel_err(y, yt.numpy()) <= TOL[np.float32]["out"]


# ============================================== 7. unbatched input, stacked, bidirectional
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_unbatched_equals_batch_of_one(kind, batch_first):
    layer = make(kind, np.float64, 40, batch_first=batch_first, **STACK)
    rng = np.random.default_rng(41)
    D, Hout = 2, layer.proj_size or H
    x = rng.standard_normal((T, I))  # (T, I) whatever batch_first says, as torch
    hx = rand_state(rng, layer, unbatched=True)
    dy = rng.standard_normal((T, D * Hout))
    dstate = rand_state(rng, layer, unbatched=True, scale=1.0)
    got, _ = run(layer, x, hx, dy, dstate)
    hs, cs = state_shapes(layer, unbatched=True)
    assert got["y"].shape == (T, D * Hout) and got["dx"].shape == (T, I)
    assert got["h_n"].shape == got["dh0"].shape == hs == (4, Hout)
    if is_lstm(layer):
        assert got["c_n"].shape == got["dc0"].shape == cs == (4, H)

    def batch(a):  # unbatched sequence (T, F) -> the layer's batched layout, B = 1
        return a[None] if batch_first else a[:, None]

    h0, c0 = split(hx)
    dh, dc = split(dstate)
    bhx = (h0[:, None], c0[:, None]) if c0 is not None else h0[:, None]
    bds = (dh[:, None], dc[:, None]) if dc is not None else dh[:, None]
    one, _ = run(layer, batch(x), bhx, batch(dy), bds)
    for k in ("y", "dx"):
        one[k] = one[k][0] if batch_first else one[k][:, 0]
    for k in ("h_n", "c_n", "dh0", "dc0"):
        if k in one:
            one[k] = one[k][:, 0]
    check_equal(got, one, f"{kind} unbatched vs B=1")
    # inference too
    y, s = layer(x, hx)
    assert rel_err(y, got["y"]) <= TOL[np.float64]["out"]
    assert split(s)[0].shape == hs


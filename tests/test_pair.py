"""A bidirectional layer's two directions side by side (cpu/threads.h, parallel_pair;
functional.sequence_forward_pair / sequence_backward_pair).

The pair calls must give each direction exactly what the one-direction calls give it (the
kernels' results do not depend on their thread count), at every thread count: even
counts split the team in halves, odd ones run the directions one after the other.  The
layers' and drop-ins' bidirectional tests (against the float64 reference and torch.nn)
run through these calls too; here: the split itself, the calls' results bit for bit, the
errors, and the drop-ins' use of them."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from _util import make_layer, run_layer

import fusedrnn
from fusedrnn import _core
from fusedrnn import functional as F
from fusedrnn._stack import Rows


# ------------------------------------------------------------------ the split
@pytest.mark.parametrize("n, threads, apart", [
    (1, 1, False),  # one thread: one job after the other
    (2, 1, True),   # a half each
    (3, 3, False),  # odd: one after the other, each on all three
    (4, 2, True),
    (6, 3, True),
])
def test_even_counts_split_the_team_in_halves(n, threads, apart, restore_threads):
    fusedrnn.set_num_threads(n)
    for job in _core._pair_probe(n):
        # (threads the job sees, threads of its nested region, its threads past that
        # region's barrier and step barrier whose own nested region ran alone, whether
        # the jobs ran on different threads)
        assert job == (threads, threads, threads, apart)


def test_asking_for_fewer_threads_than_set(restore_threads):
    """An even n below the count: halves of n / 2; an odd one: the jobs one after the
    other, each as a call outside a pair (all the threads set)."""
    fusedrnn.set_num_threads(4)
    assert _core._pair_probe(2) == [(1, 1, 1, True)] * 2
    assert _core._pair_probe(3) == [(4, 4, 4, False)] * 2


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("fail", [0, 1])
def test_an_exception_in_a_job_reaches_the_caller_and_the_team_goes_on(n, fail,
                                                                       restore_threads):
    fusedrnn.set_num_threads(n)
    with pytest.raises(RuntimeError, match=f"job {fail} failed"):
        _core._pair_probe(n, fail)
    expected = [(n // 2, n // 2, n // 2, True)] * 2 if n % 2 == 0 else [(n, n, n, False)] * 2
    assert _core._pair_probe(n) == expected


# ------------------------------------------------------------------ the calls
CELLS = ["lstm", "lstm_proj", "gru", "gru_reset_before", "rnn_tanh", "rnn_relu"]


def _weights(cell, I, H, P, dtype, rng):
    G = F.CELLS["lstm" if cell == "lstm_proj" else cell]
    Hr = P or H
    w = dict(weight_ih=rng.standard_normal((G * H, I)), weight_hh=rng.standard_normal((G * H, Hr)),
             bias_ih=rng.standard_normal(G * H), bias_hh=rng.standard_normal(G * H))
    if P:
        w["weight_hr"] = rng.standard_normal((P, H))
    w = {k: (0.3 * v).astype(dtype) for k, v in w.items()}
    return F.pack("lstm" if cell == "lstm_proj" else cell, **w)


def _case(cell, dtype, packed, seed=0):
    """Both directions' arguments: (packed weights, x, h0, c0, dy, dh_n, dc_n, batch_sizes)."""
    rng = np.random.default_rng(seed)
    T, B, I, H = 6, 5, 12, 24
    P = 8 if cell == "lstm_proj" else 0
    Hr = P or H
    lstm = cell.startswith("lstm")
    ws = [_weights(cell, I, H, P, dtype, rng) for _ in range(2)]
    bs = np.array([5, 5, 4, 3, 3, 1], np.int64) if packed else None
    rows = (int(bs.sum()),) if packed else (T, B)
    x = rng.standard_normal(rows + (I,)).astype(dtype)
    xs = (x, Rows(bs).reverse(x))  # the reverse direction reads its rows reversed
    h0 = tuple(rng.standard_normal((B, Hr)).astype(dtype) for _ in range(2))
    c0 = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in range(2)) if lstm else None
    dy = tuple(rng.standard_normal(rows + (Hr,)).astype(dtype) for _ in range(2))
    dh = tuple(rng.standard_normal((B, Hr)).astype(dtype) for _ in range(2))
    dc = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in range(2)) if lstm else None
    return ws, xs, h0, c0, dy, dh, dc, bs


def _assert_same(a, b, what):
    assert (a is None) == (b is None), what
    if a is not None:
        np.testing.assert_array_equal(a, b, err_msg=what)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_pair_calls_equal_the_one_direction_calls(cell, dtype, packed, restore_threads):
    ws, xs, h0, c0, dy, dh, dc, bs = _case(cell, dtype, packed)
    c = (None, None) if c0 is None else c0
    dcs = (None, None) if dc is None else dc
    fusedrnn.set_num_threads(1)
    one = [F.sequence_forward(ws[i], xs[i], h0[i], c[i], train=True, batch_sizes=bs)
           for i in range(2)]
    inf = [F.sequence_forward(ws[i], xs[i], h0[i], c[i], batch_sizes=bs) for i in range(2)]
    grads = [F.sequence_backward(ws[i], xs[i], one[i][3], dy[i], dh[i], dcs[i], batch_sizes=bs)
             for i in range(2)]
    for n in (1, 2, 3, 4):
        fusedrnn.set_num_threads(n)
        fwd = F.sequence_forward_pair(ws, xs, h0, c0, train=True, batch_sizes=bs)
        fwd_inf = F.sequence_forward_pair(ws, xs, h0, c0, batch_sizes=bs)
        bwd = F.sequence_backward_pair(ws, xs, (fwd[0][3], fwd[1][3]), dy, dh, dc,
                                       batch_sizes=bs)
        for i in range(2):
            for name, a, b in zip(("y", "h_n", "c_n", "workspace"), fwd[i], one[i]):
                _assert_same(a, b, f"{n} threads, direction {i}: {name}")
            for name, a, b in zip(("y", "h_n", "c_n", "workspace"), fwd_inf[i], inf[i]):
                _assert_same(a, b, f"{n} threads, direction {i}, inference: {name}")
            assert bwd[i].keys() == grads[i].keys()
            for name in grads[i]:
                _assert_same(bwd[i][name], grads[i][name], f"{n} threads, direction {i}: {name}")


def test_need_dx_false_skips_dx_of_both(restore_threads):
    ws, xs, h0, c0, dy, dh, dc, bs = _case("gru", np.float32, False)
    fwd = F.sequence_forward_pair(ws, xs, h0, train=True)
    wss = (fwd[0][3], fwd[1][3])
    full = F.sequence_backward_pair(ws, xs, wss, dy, need_dx=True)
    part = F.sequence_backward_pair(ws, xs, wss, dy, need_dx=False)
    for g, p in zip(full, part):
        assert g["dx"] is not None and p["dx"] is None
        for name in ("dh0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            np.testing.assert_array_equal(p[name], g[name], err_msg=name)


def test_two_python_threads_calling_at_once_get_their_own_results(restore_threads):
    """The team serves one caller; the other runs its pair on its own thread."""
    fusedrnn.set_num_threads(2)
    cases = [_case("lstm", np.float32, False, seed=s) for s in (1, 2)]
    want = [F.sequence_forward_pair(c[0], c[1], c[2], c[3]) for c in cases]
    got, errors = [None, None], []

    def run(i):
        try:
            for _ in range(20):
                c = cases[i]
                got[i] = F.sequence_forward_pair(c[0], c[1], c[2], c[3])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            for u, v in zip(a, b):
                _assert_same(u, v, "concurrent pair")


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("mode", ["int8", "float16", "bfloat16"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_reset_before", "rnn_tanh"])
def test_quantized_pair_equals_the_one_direction_calls(cell, mode, packed, restore_threads):
    from fusedrnn.quantized._base import quantize_matrix

    rng = np.random.default_rng(5)
    T, B, I, H = 6, 5, 12, 24
    G = F.CELLS[cell]
    ws = []
    for _ in range(2):
        (qi, si), (qh, sh) = (quantize_matrix(rng.uniform(-0.3, 0.3, s).astype(np.float32), mode)
                              for s in ((G * H, I), (G * H, H)))
        b = [rng.uniform(-0.3, 0.3, G * H).astype(np.float32) for _ in range(2)]
        ws.append(F.quant_pack(cell, mode, qi, qh, *b, scale_ih=si, scale_hh=sh))
    bs = np.array([5, 5, 4, 3, 3, 1], np.int64) if packed else None
    rows = (int(bs.sum()),) if packed else (T, B)
    x = rng.standard_normal(rows + (I,)).astype(np.float32)
    xs = (x, Rows(bs).reverse(x))
    h0 = tuple(rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    c0 = tuple(rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    c = c0 if cell == "lstm" else (None, None)
    fusedrnn.set_num_threads(1)
    one = [F.quant_forward(ws[i], xs[i], h0[i], c[i], batch_sizes=bs) for i in range(2)]
    for n in (1, 2, 3, 4):
        fusedrnn.set_num_threads(n)
        got = F.quant_forward_pair(ws, xs, h0, c0 if cell == "lstm" else None, batch_sizes=bs)
        for i in range(2):
            for name, a, b in zip(("y", "h_n", "c_n"), got[i], one[i]):
                _assert_same(a, b, f"{n} threads, direction {i}: {name}")


# ------------------------------------------------------------------ errors
def test_errors_name_the_direction_and_the_argument():
    ws, xs, h0, c0, dy, dh, dc, bs = _case("lstm", np.float32, False)
    with pytest.raises(ValueError, match=r"direction 1: x: .*shape|direction 1: x:"):
        F.sequence_forward_pair(ws, (xs[0], xs[1][:, :3]), h0, c0)
    with pytest.raises(TypeError, match=r"direction 0: h0: expected dtype"):
        F.sequence_forward_pair(ws, xs, (h0[0].astype(np.float64), h0[1]), c0)
    with pytest.raises(ValueError, match=r"direction 0: c0: required for an LSTM"):
        F.sequence_forward_pair(ws, xs, h0, None)
    with pytest.raises(TypeError, match=r"direction 1: weights: expected packed weights"):
        F.sequence_forward_pair((ws[0], "w"), xs, h0, c0)
    with pytest.raises(TypeError, match=r"x: expected a pair"):
        F.sequence_forward_pair(ws, (xs[0],), h0, c0)
    with pytest.raises(TypeError, match=r"h0: expected a pair"):
        F.sequence_forward_pair(ws, xs, h0[0], c0)
    with pytest.raises(TypeError, match=r"weights: expected a pair"):
        F.sequence_forward_pair(3, xs, h0, c0)
    fwd = F.sequence_forward_pair(ws, xs, h0, c0, train=True)
    wss = (fwd[0][3], fwd[1][3])
    with pytest.raises(ValueError, match=r"direction 1: workspace: expected shape"):
        F.sequence_backward_pair(ws, xs, (wss[0], wss[1][:-1]), dy)
    with pytest.raises(ValueError, match=r"direction 0: dy: "):
        F.sequence_backward_pair(ws, xs, wss, (dy[0][:2], dy[1]))
    with pytest.raises(TypeError, match=r"dh_n: expected a pair"):
        F.sequence_backward_pair(ws, xs, wss, dy, dh[0])


def test_quantized_pair_errors_name_the_direction():
    from fusedrnn.quantized._base import quantize_matrix

    rng = np.random.default_rng(6)
    qi, si = quantize_matrix(rng.uniform(-0.3, 0.3, (12, 4)).astype(np.float32), "int8")
    qh, sh = quantize_matrix(rng.uniform(-0.3, 0.3, (12, 4)).astype(np.float32), "int8")
    w = F.quant_pack("gru", "int8", qi, qh, scale_ih=si, scale_hh=sh)
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    h = np.zeros((2, 4), np.float32)
    bad = x.copy()
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"direction 1: x.*non-finite"):
        F.quant_forward_pair((w, w), (x, bad), (h, h))
    with pytest.raises(ValueError, match=r"direction 0: h0: expected shape"):
        F.quant_forward_pair((w, w), (x, x), (h[:1], h))
    with pytest.raises(TypeError, match=r"direction 0: weights: expected quantized weights"):
        F.quant_forward_pair((F.pack("gru", np.zeros((12, 4), np.float32),
                                     np.zeros((12, 4), np.float32)), w), (x, x), (h, h))


# ------------------------------------------------------------------ the layers use them
def _count_pairs(monkeypatch):
    import fusedrnn._stack as stack

    calls = []
    for name in ("sequence_forward_pair", "sequence_backward_pair"):
        real = getattr(stack, name)

        def counted(*a, _real=real, _name=name, **k):
            calls.append(_name)
            return _real(*a, **k)

        monkeypatch.setattr(stack, name, counted)
    return calls


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_numpy_layers_run_each_bidirectional_layer_as_one_pair(kind, monkeypatch,
                                                               restore_threads):
    m = make_layer(kind, 8, 16, seed=3, num_layers=2, bidirectional=True)
    x = np.random.default_rng(3).standard_normal((5, 4, 8)).astype(np.float32)
    fusedrnn.set_num_threads(1)
    want = run_layer(m, x)
    calls = _count_pairs(monkeypatch)
    fusedrnn.set_num_threads(2)
    got = run_layer(m, x)
    assert calls == ["sequence_forward_pair"] * 2 + ["sequence_backward_pair"] * 2
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_quantized_layer_runs_each_bidirectional_layer_as_one_pair(monkeypatch,
                                                                   restore_threads):
    from fusedrnn.quantized import LSTM as QLSTM

    m = QLSTM(8, 16, num_layers=2, bidirectional=True, seed=4)
    x = np.random.default_rng(4).standard_normal((5, 4, 8)).astype(np.float32)
    lengths = np.array([5, 2, 4, 1])
    fusedrnn.set_num_threads(1)
    want = m(x, lengths=lengths)
    calls = []
    real = F.quant_forward_pair

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(F, "quant_forward_pair", counted)
    fusedrnn.set_num_threads(2)
    got = m(x, lengths=lengths)
    assert len(calls) == 2
    np.testing.assert_array_equal(got[0], want[0])
    for a, b in zip(got[1], want[1]):
        np.testing.assert_array_equal(a, b)


def test_torch_bidirectional_runs_pairs_and_matches_torch_nn(torch, frt, monkeypatch,
                                                             restore_threads):
    """Autograd through _PairKernel: gradients of a loss that reads only some outputs (y
    of neither direction, h_n of the last layer's reverse direction, c_n of one) match
    torch.nn's."""
    torch.manual_seed(0)
    ref = torch.nn.LSTM(6, 10, num_layers=2, bidirectional=True).double()
    ours = frt.LSTM(6, 10, num_layers=2, bidirectional=True).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(7, 3, 6, dtype=torch.float64)
    h0 = torch.randn(4, 3, 10, dtype=torch.float64)
    c0 = torch.randn(4, 3, 10, dtype=torch.float64)
    calls = _count_pairs(monkeypatch)
    fusedrnn.set_num_threads(2)
    results = []
    for m in (ref, ours):
        xx, hh, cc = (t.clone().requires_grad_() for t in (x, h0, c0))
        _, (h_n, c_n) = m(xx, (hh, cc))
        (h_n[3].sum() + (c_n[0] ** 2).sum()).backward()
        results.append([xx.grad, hh.grad, cc.grad] + [p.grad for p in m.parameters()])
    assert calls == ["sequence_forward_pair"] * 2 + ["sequence_backward_pair"] * 2
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_torch_pair_reports_an_input_changed_in_place(torch, frt):
    gru = frt.GRU(4, 5, bidirectional=True)
    x = torch.randn(3, 2, 4, requires_grad=True)
    xx = x * 1.0
    y, _ = gru(xx)
    xx.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()

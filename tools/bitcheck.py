"""Bit-for-bit A/B of the compiled kernels, for changes that must not alter a result
(a refactoring, a build change): save every output of a fixed set of problems with the
build before and after, then compare them bit for bit.

  PYTHONPATH=<tree>/python python tools/bitcheck.py save OUT.npz   # the build under test
  python tools/bitcheck.py compare A.npz B.npz                      # exit 1 if any differ

`save` runs every ISA this CPU runs (cpu_info()["available"]; FUSEDRNN_ISA in a
subprocess each) x threads 1, 2 over the problems below (every cell kind and form,
proj_size, bidirectional, lengths, two layers, float32 and float64, forward and
backward) and stores every output array.  Compare files saved on the same machine.
"""
import os
import subprocess
import sys

import numpy as np

THREADS = [1, 2]


def problems():
    # (name, ctor, kwargs, T, B, lengths)
    out = []
    for dt in (np.float32, np.float64):
        dn = np.dtype(dt).name
        for cls, kw in [
            ("LSTM", {}),
            ("LSTM", {"proj_size": 5}),
            ("GRU", {}),
            ("GRU", {"reset_after": False}),
            ("RNN", {"nonlinearity": "tanh"}),
            ("RNN", {"nonlinearity": "relu"}),
        ]:
            for (T, B, I, H) in [(4, 3, 5, 17), (9, 8, 33, 160), (3, 1, 7, 9)]:
                for extra in [{}, {"bidirectional": True, "num_layers": 2}]:
                    for lengths in [None, "var"]:
                        k = dict(kw)
                        k.update(extra)
                        if "proj_size" in k and H <= k["proj_size"]:
                            continue
                        tag = f"{cls}-{'-'.join(f'{a}{b}' for a, b in sorted(k.items()))}-{dn}-T{T}B{B}I{I}H{H}-{lengths}"
                        out.append((tag, cls, k, dt, T, B, I, H, lengths))
    # large ones: chunked K loop (B > MR, H > KCF), blocked inference, backward A strips
    for dt in (np.float32, np.float64):
        dn = np.dtype(dt).name
        for cls, kw in [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("GRU", {"reset_after": False}),
                        ("LSTM", {"proj_size": 64})]:
            for (T, B, I, H) in [(6, 16, 64, 256), (3, 5, 24, 128)]:
                tag = f"big-{cls}-{kw}-{dn}-T{T}B{B}I{I}H{H}"
                out.append((tag, cls, kw, dt, T, B, I, H, "var"))
    return out


def run_all():
    import fusedrnn

    res = {}
    for tag, cls, kw, dt, T, B, I, H, lengths in problems():
        m = getattr(fusedrnn, cls)(I, H, dtype=dt, seed=7, **kw)
        rng = np.random.default_rng(T * 1000 + B * 100 + H)
        x = rng.standard_normal((T, B, I)).astype(dt)
        ln = None
        if lengths == "var":
            ln = np.maximum(1, T - np.arange(B) % T).astype(np.int64)
            rng.shuffle(ln)
        y, state = m(x, lengths=ln)
        res[tag + "/inf_y"] = y
        for i, s in enumerate(state if isinstance(state, tuple) else (state,)):
            res[tag + f"/inf_s{i}"] = s
        y2, state2, tape = m.forward(x, lengths=ln, train=True)
        res[tag + "/tr_y"] = y2
        dy = rng.standard_normal(y2.shape).astype(dt)
        if isinstance(state2, tuple):
            ds = tuple(rng.standard_normal(s.shape).astype(dt) for s in state2)
        else:
            ds = rng.standard_normal(state2.shape).astype(dt)
        dx, ds0, grads = m.backward(tape, dy, ds)
        res[tag + "/dx"] = dx
        for i, s in enumerate(ds0 if isinstance(ds0, tuple) else (ds0,)):
            res[tag + f"/ds0_{i}"] = s
        for k, v in grads.items():
            res[tag + "/g_" + k] = v
    # cells: one-step kernel (inference) and training step
    for dt in (np.float32, np.float64):
        for cls, kw in [("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {}),
                        ("RNNCell", {"nonlinearity": "relu"})]:
            for (B, I, H) in [(1, 5, 7), (5, 16, 33), (13, 40, 100), (64, 128, 512)]:
                tag = f"cell-{cls}-{kw}-{np.dtype(dt).name}-B{B}I{I}H{H}"
                m = getattr(fusedrnn, cls)(I, H, dtype=dt, seed=3, **kw)
                rng = np.random.default_rng(B + H)
                x = rng.standard_normal((B, I)).astype(dt)
                h = rng.standard_normal((B, H)).astype(dt)
                hx = (h, rng.standard_normal((B, H)).astype(dt)) if cls == "LSTMCell" else h
                out = m(x, hx)
                for i, s in enumerate(out if isinstance(out, tuple) else (out,)):
                    res[tag + f"/inf_{i}"] = s
                st, tape = m.forward(x, hx, train=True)
                ds = tuple(np.ones_like(s) for s in st) if isinstance(st, tuple) else np.ones_like(st)
                dx, ds0, grads = m.backward(tape, ds)
                res[tag + "/dx"] = dx
                for k, v in grads.items():
                    res[tag + "/g_" + k] = v
    for dt in (np.float32, np.float64):
        xs = np.linspace(-100, 100, 4099).astype(dt)
        for w in ("exp", "sigmoid", "tanh"):
            res[f"act-{w}-{np.dtype(dt).name}"] = fusedrnn._core._activation(w, xs)
    return res


def child(out):
    import fusedrnn

    n = int(os.environ["BITCHECK_THREADS"])
    fusedrnn.set_num_threads(n)
    assert fusedrnn.cpu_info()["isa"] == os.environ["FUSEDRNN_ISA"]
    res = run_all()
    np.savez(out, **res)


def save(out):
    allres = {}
    tmp = out + ".part.npz"
    import fusedrnn

    for isa in fusedrnn.cpu_info()["available"]:
        for n in THREADS:
            env = dict(os.environ, FUSEDRNN_ISA=isa, BITCHECK_THREADS=str(n))
            subprocess.run([sys.executable, __file__, "child", tmp], env=env, check=True)
            with np.load(tmp) as z:
                for k in z.files:
                    allres[f"{isa}/t{n}/{k}"] = z[k]
    os.remove(tmp)
    np.savez(out, **allres)
    print(f"saved {len(allres)} arrays to {out}")


def compare(a, b):
    za, zb = np.load(a), np.load(b)
    ka, kb = set(za.files), set(zb.files)
    bad = sorted(ka ^ kb)
    for k in sorted(ka & kb):
        x, y = za[k], zb[k]
        if x.dtype != y.dtype or not np.array_equal(x, y, equal_nan=True):
            bad.append(k)
    print(f"{len(ka & kb)} arrays compared; {len(bad)} differ or missing")
    for k in bad[:20]:
        print("  ", k)
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2])
    elif sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))

// A smoke test of the generic kernels with no Python: built by tools/cross_aarch64.sh
// for aarch64 (and run there under qemu-aarch64), it links the translation units of
// _core that need no Python headers and checks, against values computed here
// independently (a plain scalar recurrence in double, and finite differences of it):
//   - forward of LSTM, GRU (reset_after and reset_before), RNN tanh/relu, float32 and
//     float64, with a hidden size that has full vectors and a tail;
//   - backward (every gradient) of LSTM and GRU in float64, by central differences;
//   - the float32 exp, sigmoid and tanh against libm in double;
//   - 1 and 3 threads give bit-identical results;
//   - the quantized kernels: the exact int8 product and the row quantizer against plain
//     loops, and a bfloat16-weight forward of every cell against the float32 kernels on
//     the same (bfloat16-exact) weights.
// It also builds and runs natively (any GCC/Clang): see the script.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/threads.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "fusedrnn/quant.h"

namespace fusedrnn {
namespace generic {
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
extern const QuantTable quant_table;
}  // namespace generic
}  // namespace fusedrnn

using fusedrnn::Cell;
using fusedrnn::Dims;
using V = std::vector<double>;

namespace {

int failures = 0;

void expect(bool ok, const char* what, double got, double want) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s: got %.17g, want %.17g\n", what, got, want);
  }
}

// Deterministic inputs in [-1, 1) (a 64-bit LCG), independent of any library.
struct Lcg {
  uint64_t s;
  double next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
  }
  V vec(size_t n, double scale = 1.0) {
    V v(n);
    for (auto& e : v) e = scale * next();
    return v;
  }
};

struct Problem {
  Cell cell;
  int64_t T = 3, B = 2, I = 3, H = 7;  // H = 7: one 4-float vector and a tail of 3
  V w_ih, w_hh, b_ih, b_hh, x, h0, c0;
  int64_t G() const { return fusedrnn::num_gates(cell); }
};

Problem make(Cell cell, uint64_t seed) {
  Problem p;
  p.cell = cell;
  Lcg r{seed};
  const int64_t G = p.G(), H = p.H, I = p.I, B = p.B, T = p.T;
  p.w_ih = r.vec(G * H * I, 0.6);
  p.w_hh = r.vec(G * H * H, 0.6);
  p.b_ih = r.vec(G * H, 0.3);
  p.b_hh = r.vec(G * H, 0.3);
  p.x = r.vec(T * B * I);
  p.h0 = r.vec(B * H, 0.5);
  p.c0 = r.vec(B * H, 0.5);
  return p;
}

double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// The recurrence as torch.nn documents it, one scalar at a time, in double.
// Returns y (T, B, H) followed by h_n (B, H) and, for LSTM, c_n (B, H).
V reference(const Problem& p) {
  const int64_t T = p.T, B = p.B, I = p.I, H = p.H, G = p.G();
  V h = p.h0, c = p.c0, out;
  V y(T * B * H);
  for (int64_t t = 0; t < T; ++t) {
    V hn(B * H), cn(B * H);
    for (int64_t b = 0; b < B; ++b) {
      const double* xt = &p.x[(t * B + b) * I];
      const double* hp = &h[b * H];
      auto gx = [&](int64_t row) {  // W_ih x + b_ih for one gate row
        double s = p.b_ih[row];
        for (int64_t k = 0; k < I; ++k) s += p.w_ih[row * I + k] * xt[k];
        return s;
      };
      auto gh = [&](int64_t row, const double* hv) {  // W_hh h + b_hh
        double s = p.b_hh[row];
        for (int64_t k = 0; k < H; ++k) s += p.w_hh[row * H + k] * hv[k];
        return s;
      };
      for (int64_t j = 0; j < H; ++j) {
        if (p.cell == Cell::lstm) {
          const double i = sig(gx(j) + gh(j, hp)), f = sig(gx(H + j) + gh(H + j, hp));
          const double g = std::tanh(gx(2 * H + j) + gh(2 * H + j, hp));
          const double o = sig(gx(3 * H + j) + gh(3 * H + j, hp));
          cn[b * H + j] = f * c[b * H + j] + i * g;
          hn[b * H + j] = o * std::tanh(cn[b * H + j]);
        } else if (p.cell == Cell::gru || p.cell == Cell::gru_reset_before) {
          const double r = sig(gx(j) + gh(j, hp)), z = sig(gx(H + j) + gh(H + j, hp));
          double n;
          if (p.cell == Cell::gru) {
            n = std::tanh(gx(2 * H + j) + r * gh(2 * H + j, hp));
          } else {  // W_hn (r * h) + b_hn, with this row's r of every unit
            V rh(H);
            for (int64_t k = 0; k < H; ++k)
              rh[k] = sig(gx(k) + gh(k, hp)) * hp[k];
            n = std::tanh(gx(2 * H + j) + gh(2 * H + j, rh.data()));
          }
          hn[b * H + j] = (1.0 - z) * n + z * hp[j];
        } else {
          const double a = gx(j) + gh(j, hp);
          hn[b * H + j] = p.cell == Cell::rnn_tanh ? std::tanh(a) : (a > 0 ? a : 0.0);
        }
        (void)G;
      }
    }
    h = hn;
    c = cn;
    for (int64_t k = 0; k < B * H; ++k) y[t * B * H + k] = h[k];
  }
  out = y;
  out.insert(out.end(), h.begin(), h.end());
  if (p.cell == Cell::lstm) out.insert(out.end(), c.begin(), c.end());
  return out;
}

template <class T>
std::vector<T> cast(const V& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Runs the kernels' forward (and backward with dy, when given) for p.
template <class T>
struct Run {
  std::vector<T> y, h_n, c_n, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh;
};

template <class T>
Run<T> run(const fusedrnn::KernelTable<T>& k, const Problem& p, const V* dy) {
  const int64_t T_ = p.T, B = p.B, H = p.H, I = p.I, G = p.G();
  std::vector<int64_t> bs(T_ + 1, B), off(T_ + 1);
  bs[T_] = 0;
  for (int64_t t = 0; t <= T_; ++t) off[t] = t * B;
  Dims d;
  d.T = T_, d.B = B, d.I = I, d.H = H, d.P = 0, d.N = T_ * B, d.bs = bs.data(), d.off = off.data();
  const auto w_ih = cast<T>(p.w_ih), w_hh = cast<T>(p.w_hh), b_ih = cast<T>(p.b_ih),
             b_hh = cast<T>(p.b_hh), x = cast<T>(p.x), h0 = cast<T>(p.h0), c0 = cast<T>(p.c0);
  fusedrnn::Weights<T> w;
  k.pack_weights(w, p.cell, I, H, 0, w_ih.data(), w_hh.data(), b_ih.data(), b_hh.data(),
                 nullptr, false);
  Run<T> r;
  r.y.resize(d.N * H);
  r.h_n.resize(B * H);
  r.c_n.resize(B * H);
  const bool lstm = p.cell == Cell::lstm;
  std::vector<T> ws(dy ? fusedrnn::Workspace{p.cell, d}.size() : 0);
  k.forward(w, d, x.data(), h0.data(), lstm ? c0.data() : nullptr, r.y.data(), r.h_n.data(),
            lstm ? r.c_n.data() : nullptr, dy ? ws.data() : nullptr);
  if (dy) {
    const auto dy_t = cast<T>(*dy);
    r.dx.resize(d.N * I), r.dh0.resize(B * H), r.dc0.resize(B * H);
    r.dw_ih.resize(G * H * I), r.dw_hh.resize(G * H * H), r.db_ih.resize(G * H),
        r.db_hh.resize(G * H);
    k.backward(w, d, x.data(), ws.data(), dy_t.data(), nullptr, nullptr, r.dx.data(),
               r.dh0.data(), lstm ? r.dc0.data() : nullptr, r.dw_ih.data(), r.dw_hh.data(),
               nullptr, r.db_ih.data(), r.db_hh.data());
  }
  return r;
}

template <class T>
void check_forward(const fusedrnn::KernelTable<T>& k, Cell cell, double tol) {
  const Problem p = make(cell, 17 + static_cast<int>(cell));
  const V ref = reference(p);
  const Run<T> r = run(k, p, nullptr);
  const size_t ny = r.y.size(), nh = r.h_n.size();
  char what[96];
  std::snprintf(what, sizeof what, "forward %s %s", fusedrnn::cell_name(cell), k.isa);
  for (size_t i = 0; i < ny; ++i) expect(std::fabs(r.y[i] - ref[i]) <= tol, what, r.y[i], ref[i]);
  for (size_t i = 0; i < nh; ++i)
    expect(std::fabs(r.h_n[i] - ref[ny + i]) <= tol, what, r.h_n[i], ref[ny + i]);
  if (cell == Cell::lstm)
    for (size_t i = 0; i < nh; ++i)
      expect(std::fabs(r.c_n[i] - ref[ny + nh + i]) <= tol, what, r.c_n[i], ref[ny + nh + i]);
}

// Gradients of L = sum(y * dy) against central differences of reference().
void check_backward(Cell cell) {
  Problem p = make(cell, 101 + static_cast<int>(cell));
  Lcg rng{7};
  const V dy = rng.vec(p.T * p.B * p.H);
  const Run<double> r = run(fusedrnn::generic::table_f64, p, &dy);
  auto loss = [&](const Problem& q) {
    const V out = reference(q);
    double s = 0;
    for (size_t i = 0; i < dy.size(); ++i) s += out[i] * dy[i];
    return s;
  };
  struct Arg {
    const char* name;
    V Problem::*field;
    const std::vector<double>* grad;
  };
  std::vector<Arg> args = {{"dx", &Problem::x, &r.dx},         {"dh0", &Problem::h0, &r.dh0},
                           {"dw_ih", &Problem::w_ih, &r.dw_ih}, {"dw_hh", &Problem::w_hh, &r.dw_hh},
                           {"db_ih", &Problem::b_ih, &r.db_ih}, {"db_hh", &Problem::b_hh, &r.db_hh}};
  if (cell == Cell::lstm) args.push_back({"dc0", &Problem::c0, &r.dc0});
  const double eps = 1e-6;
  for (const Arg& a : args) {
    char what[96];
    std::snprintf(what, sizeof what, "backward %s %s", fusedrnn::cell_name(cell), a.name);
    V& v = p.*(a.field);
    for (size_t i = 0; i < v.size(); ++i) {
      const double keep = v[i];
      v[i] = keep + eps;
      const double up = loss(p);
      v[i] = keep - eps;
      const double down = loss(p);
      v[i] = keep;
      const double fd = (up - down) / (2 * eps), got = (*a.grad)[i];
      expect(std::fabs(got - fd) <= 1e-7 + 1e-6 * std::fabs(fd), what, got, fd);
    }
  }
}

void check_activations() {
  const auto& k = fusedrnn::generic::table_f32;
  std::vector<float> x;
  for (int i = -400; i <= 400; ++i) x.push_back(static_cast<float>(i) * 0.0625f);  // +-25, step 1/16
  x.push_back(1e-30f), x.push_back(-1e-30f), x.push_back(88.0f), x.push_back(-87.0f);
  std::vector<float> y(x.size());
  const char* names[] = {"exp", "sigmoid", "tanh"};
  for (int which = 0; which < 3; ++which) {
    k.activation(which, x.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const double v = x[i];
      const double want = which == 0 ? std::exp(v) : which == 1 ? sig(v) : std::tanh(v);
      // A few float32 ULP of the result (the kernels promise at most 4), or 1e-45 absolute.
      const double tol = 8 * std::fabs(want) * 5.96e-8 + 1e-45;
      char what[64];
      std::snprintf(what, sizeof what, "%s(%g)", names[which], v);
      expect(std::fabs(y[i] - want) <= tol, what, y[i], want);
    }
  }
}

void check_threads() {
  // Large enough that the team splits the work; 1 and 3 threads must agree to the bit.
  Problem p = make(Cell::lstm, 5);
  p.T = 4, p.B = 16, p.I = 9, p.H = 67;
  p = [&] {
    Problem q = p;
    Lcg r{5};
    const int64_t G = q.G();
    q.w_ih = r.vec(G * q.H * q.I, 0.2), q.w_hh = r.vec(G * q.H * q.H, 0.2);
    q.b_ih = r.vec(G * q.H, 0.3), q.b_hh = r.vec(G * q.H, 0.3);
    q.x = r.vec(q.T * q.B * q.I), q.h0 = r.vec(q.B * q.H), q.c0 = r.vec(q.B * q.H);
    return q;
  }();
  Lcg rng{9};
  const V dy = rng.vec(p.T * p.B * p.H);
  fusedrnn::set_num_threads(1);
  const Run<float> one = run(fusedrnn::generic::table_f32, p, &dy);
  fusedrnn::set_num_threads(3);
  const Run<float> three = run(fusedrnn::generic::table_f32, p, &dy);
  fusedrnn::set_num_threads(1);
  bool same = one.y == three.y && one.h_n == three.h_n && one.c_n == three.c_n &&
              one.dx == three.dx && one.dw_ih == three.dw_ih && one.dw_hh == three.dw_hh &&
              one.db_ih == three.db_ih;
  expect(same, "1 and 3 threads bit-identical", same, 1);
  const V ref = reference(p);
  for (size_t i = 0; i < one.y.size(); ++i)
    expect(std::fabs(one.y[i] - ref[i]) <= 2e-5, "forward lstm (threads problem)", one.y[i], ref[i]);
}

}  // namespace

// The quantized kernels of the generic ISA.
void check_quant() {
  const fusedrnn::QuantTable& q = fusedrnn::generic::quant_table;
  Lcg r{99};
  const int64_t M = 5, N = 37, K = 13;
  std::vector<int8_t> a(M * K), w(N * K);
  for (auto& e : a) e = static_cast<int8_t>(std::lround(127 * r.next()));
  for (auto& e : w) e = static_cast<int8_t>(std::lround(127 * r.next()));
  std::vector<int32_t> out(M * N);
  q.matmul(M, N, K, a.data(), w.data(), out.data());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += a[m * K + k] * w[n * K + k];
      expect(out[m * N + n] == s, "quant matmul", out[m * N + n], s);
    }
  std::vector<float> f(M * K);
  for (auto& e : f) e = static_cast<float>(3 * r.next());
  std::vector<int8_t> qf(M * K);
  std::vector<float> sc(M);
  q.quantize_rows(M, K, f.data(), qf.data(), sc.data());
  for (int64_t m = 0; m < M; ++m) {
    float amax = 0;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(f[m * K + k]));
    const float inv = 127.0f / amax;
    expect(sc[m] == amax / 127.0f, "quantize_rows scale", sc[m], amax / 127.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float want = std::fmin(127.0f, std::fmax(-127.0f, std::rint(f[m * K + k] * inv)));
      expect(qf[m * K + k] == want, "quantize_rows q", qf[m * K + k], want);
    }
  }
  const Cell cells[] = {Cell::lstm, Cell::gru, Cell::gru_reset_before, Cell::rnn_tanh,
                        Cell::rnn_relu};
  for (Cell c : cells) {
    Problem p = make(c, 7);
    auto bf16 = [](V& v, std::vector<uint16_t>& bits) {  // v rounded down to bfloat16
      bits.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        float x = static_cast<float>(v[i]);
        uint32_t u;
        std::memcpy(&u, &x, 4);
        bits[i] = static_cast<uint16_t>(u >> 16);
        u &= 0xffff0000u;
        std::memcpy(&x, &u, 4);
        v[i] = x;
      }
    };
    std::vector<uint16_t> wi, wh;
    bf16(p.w_ih, wi);
    bf16(p.w_hh, wh);
    const Run<float> want = run(fusedrnn::generic::table_f32, p, nullptr);
    const auto b_ih = cast<float>(p.b_ih), b_hh = cast<float>(p.b_hh), x = cast<float>(p.x),
               h0 = cast<float>(p.h0), c0 = cast<float>(p.c0);
    fusedrnn::QuantWeights qw;
    q.pack(qw, c, fusedrnn::QuantMode::bfloat16, p.I, p.H, 0, wi.data(), wh.data(),
           b_ih.data(), b_hh.data(), nullptr, nullptr, nullptr, nullptr);
    std::vector<int64_t> bs(p.T + 1, p.B), off(p.T + 1);
    bs[p.T] = 0;
    for (int64_t t = 0; t <= p.T; ++t) off[t] = t * p.B;
    Dims d;
    d.T = p.T, d.B = p.B, d.I = p.I, d.H = p.H, d.N = p.T * p.B, d.bs = bs.data(),
    d.off = off.data();
    std::vector<float> y(d.N * p.H), h_n(p.B * p.H), c_n(p.B * p.H);
    const bool lstm = c == Cell::lstm;
    q.forward(qw, d, x.data(), h0.data(), lstm ? c0.data() : nullptr, y.data(), h_n.data(),
              lstm ? c_n.data() : nullptr);
    for (size_t i = 0; i < y.size(); ++i)
      expect(std::fabs(y[i] - want.y[i]) < 1e-5, "bfloat16 forward", y[i], want.y[i]);
  }
}

int main() {
  const Cell cells[] = {Cell::lstm, Cell::gru, Cell::gru_reset_before, Cell::rnn_tanh,
                        Cell::rnn_relu};
  for (Cell c : cells) {
    check_forward(fusedrnn::generic::table_f32, c, 2e-6);
    check_forward(fusedrnn::generic::table_f64, c, 1e-13);
  }
  check_backward(Cell::lstm);
  check_backward(Cell::gru);
  check_backward(Cell::gru_reset_before);
  check_backward(Cell::rnn_tanh);
  check_activations();
  check_threads();
  check_quant();
  if (failures) {
    std::printf("aarch64_smoke: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf(
      "aarch64_smoke: all checks passed (generic kernels, float32 and float64, quantized)\n");
  return 0;
}

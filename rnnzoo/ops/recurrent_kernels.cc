// Recurrent layers over a whole sequence as TensorFlow CPU ops, forward and backward: an LSTM
// and a reset-after GRU, each time step one packed-weight GEMM and its gate maths.
//
// RnnzooLstmSequence(projected [T, B, 4H], h0 [B, H], c0 [B, H], kernel [H, 4H])
//     -> hs [T, B, H], cs [T, B, H], gates [T, B, 4H]
// runs, for t = 1..T, with Keras' gate order i, f, g, o (`rnnzoo.cells.lstm._lstm_update`):
//
//     z          = projected_t + H_{t-1} W_h
//     I, F, G, O = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
//     C_t        = F * C_{t-1} + I * G
//     H_t        = O * tanh(C_t)
//
// and keeps the activated gates [I | F | G | O]. RnnzooLstmSequenceGrad(kernel, c0, cs, gates,
// d_hs, d_h_last, d_c_last) -> d_projected [T, B, 4H], d_h0, d_c0 runs, from t = T down to 1,
// with dH the total gradient reaching H_t:
//
//     dC   = dC_{t+1} * F_{t+1} + dH * O * (1 - tanh(C_t)^2)
//     dz_t = [dC * G * I(1-I), dC * C_{t-1} * F(1-F), dC * I * (1-G^2), dH * tanh(C_t) * O(1-O)]
//     dH_{t-1} += dz_t W_h^T
//
// RnnzooGruSequence(projected [T, B, 3H], h0 [B, H], kernel [H, 3H], recurrent_bias [3H])
//     -> hs [T, B, H], saved [T, B, 4H]
// runs (gate order z, r, h; `rnnzoo.cells.gru._gru_update`, reset_after=True):
//
//     rec     = H_{t-1} W_h + b_h                          [rec_z | rec_r | rec_h]
//     Z, R    = sigmoid(x_z + rec_z), sigmoid(x_r + rec_r)
//     N       = tanh(x_h + R * rec_h)
//     H_t     = Z * H_{t-1} + (1 - Z) * N
//
// and keeps [Z | R | N | rec_h]. RnnzooGruSequenceGrad(kernel, h0, hs, saved, d_hs, d_h_last)
// -> d_projected [T, B, 3H], d_recurrent [T, B, 3H], d_h0:
//
//     d_x_h = dH (1-Z)(1-N^2),  d_x_z = dH (H_{t-1} - N) Z(1-Z),  d_x_r = d_x_h rec_h R(1-R)
//     d_projected_t = [d_x_z, d_x_r, d_x_h],  d_recurrent_t = [d_x_z, d_x_r, d_x_h * R]
//     dH_{t-1} += d_recurrent_t W_h^T + dH * Z
//
// The weight gradients (sum_t H_{t-1}^T dz_t, and the GRU's recurrent bias) are single large
// matmuls the caller does after the loop (rnnzoo/models/recurrence.py).
//
// How it runs. The hidden units are cut in chunks of kChunkUnits (32 with AVX-512). At each
// time step, a chunk's work is the product of the whole H_{t-1} (forward) or dz_t (backward)
// with its columns of W_h (rows, for W_h^T), packed once per sequence into panels laid out in
// the order the micro-kernel reads them, then the gate maths of its units. The chunks of a step
// are taken by whichever threads are running (the caller and helpers on TensorFlow's intra-op
// pool, `RunTeam`), each first from its own share, and a step starts once every chunk of the
// one before is done (`Tickets`). A step is then one GEMM (at batch 32, hidden 256: [32, 256] x
// [256, 1024]) and no TensorFlow op, where the graph runs ~40 ops per step, and a thread that
// TensorFlow keeps busy elsewhere slows the op by its share only.
//
// RnnzooRowsGrad(ids, grad, num_rows) is the gradient of a one-hot input's projection
// (`gather(table, ids) + bias`) in one pass.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <type_traits>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>  // _mm_pause
#endif

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace rnnzoo {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;

namespace {

// ------------------------------------------------------------------------------ the GEMM

// One SIMD register of floats (Eigen's packet for the CPU this library is built for), and the
// micro-kernel's tile: kRows rows of A times two registers' worth (kCols) of B's columns,
// accumulated in 2 * kRows registers (16 of AVX-512's 32, 12 of AVX2's 16).
namespace ei = ::Eigen::internal;
using Vec = ei::packet_traits<float>::type;
constexpr int kLanes = ei::packet_traits<float>::size;
constexpr int kRows = kLanes >= 16 ? 8 : kLanes == 8 ? 6 : 4;
constexpr int kCols = 2 * kLanes;

// The element-wise maths is written once for T = Vec (kLanes units at a time) and T = float
// (the units left over); GCC's and Clang's vector types take +, -, * directly.
template <typename T>
inline T Load(const float* p) {
  if constexpr (std::is_same_v<T, float>) return *p;
  else return ei::ploadu<T>(p);
}
template <typename T>
inline void Store(float* p, T v) {
  if constexpr (std::is_same_v<T, float>) *p = v;
  else ei::pstoreu<float>(p, v);
}
template <typename T>
inline T Splat(float a) {
  if constexpr (std::is_same_v<T, float>) return a;
  else return ei::pset1<T>(a);
}
// TensorFlow's own sigmoid and tanh (Eigen's functors), so the ops compute what its graph does.
template <typename T>
inline T Sigmoid(T x) {
  if constexpr (std::is_same_v<T, float>) return ei::scalar_logistic_op<float>()(x);
  else return ei::scalar_logistic_op<float>().packetOp(x);
}
template <typename T>
inline T Tanh(T x) {
  if constexpr (std::is_same_v<T, float>) return ei::scalar_tanh_op<float>()(x);
  else return ei::scalar_tanh_op<float>().packetOp(x);
}

// body(T{}, j) for j = 0, kLanes, ... (T = Vec), then for the last n % kLanes (T = float).
template <typename Body>
inline void ForLanes(int n, Body body) {
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) body(Vec{}, j);
  for (; j < n; ++j) body(0.0f, j);
}

// C[0:R, 0:kCols] = A[0:R, 0:k] @ panel, the panel being B's kCols columns, row after row.
template <int R>
void MicroKernel(int k, const float* a, int lda, const float* panel, float* c, int ldc) {
  Vec acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = Splat<Vec>(0.0f);
  for (int kk = 0; kk < k; ++kk) {
    const Vec b0 = Load<Vec>(panel + kk * kCols);
    const Vec b1 = Load<Vec>(panel + kk * kCols + kLanes);
    for (int r = 0; r < R; ++r) {
      const Vec ar = Splat<Vec>(a[r * lda + kk]);
      acc0[r] = ei::pmadd(ar, b0, acc0[r]);
      acc1[r] = ei::pmadd(ar, b1, acc1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    Store(c + r * ldc, acc0[r]);
    Store(c + r * ldc + kLanes, acc1[r]);
  }
}

using MicroKernelFn = void (*)(int, const float*, int, const float*, float*, int);

template <int... R>
constexpr std::array<MicroKernelFn, sizeof...(R) + 1> MicroKernels(
    std::integer_sequence<int, R...>) {
  return {nullptr, &MicroKernel<R + 1>...};
}

// C[0:m, 0:panels*kCols] = A[0:m, 0:k] @ B, B in panels by `Pack` (row stride of C: ldc).
void Gemm(int m, int k, int panels, const float* a, int lda, const float* packed, float* c,
          int ldc) {
  static constexpr auto kernels = MicroKernels(std::make_integer_sequence<int, kRows>());
  for (int p = 0; p < panels; ++p) {
    const float* panel = packed + static_cast<size_t>(p) * k * kCols;
    int r = 0;
    for (; r + kRows <= m; r += kRows) {
      MicroKernel<kRows>(k, a + r * lda, lda, panel, c + r * ldc + p * kCols, ldc);
    }
    if (r < m) kernels[m - r](k, a + r * lda, lda, panel, c + r * ldc + p * kCols, ldc);
  }
}

// A thread's scratch memory, kept between calls: the pages of a fresh allocation of this size
// would be faulted in again at every call (about as long as the packing itself). The caller's
// buffers hold what a call's threads share (the packed weights, the backward products and
// carried gradients); a helper's, its own products.
enum ScratchSlot { kPacked, kProducts, kCarried, kNumSlots };
float* Scratch(ScratchSlot slot, size_t floats) {
  thread_local std::vector<float> buffers[kNumSlots];
  std::vector<float>& buffer = buffers[slot];
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

// Panels of B ([k, n], element (kk, j) = src[kk * k_stride + column(j)]) for `Gemm`: kCols
// columns each (the last zero-padded); panel p holds B[kk, p * kCols + c] at
// p * k * kCols + kk * kCols + c of `out` (Panels(n) * k * kCols floats).
inline int Panels(int n) { return (n + kCols - 1) / kCols; }

template <typename Column>
void Pack(int k, int n, const float* src, size_t k_stride, Column column, float* out) {
  size_t offsets[kCols];
  for (int p = 0; p < Panels(n); ++p, out += static_cast<size_t>(k) * kCols) {
    const int width = std::min(kCols, n - p * kCols);
    for (int c = 0; c < width; ++c) offsets[c] = column(p * kCols + c);
    if (k_stride != 1) {  // B's rows are the source's rows
      for (int kk = 0; kk < k; ++kk) {
        const float* row = src + kk * k_stride;
        for (int c = 0; c < width; ++c) out[kk * kCols + c] = row[offsets[c]];
        for (int c = width; c < kCols; ++c) out[kk * kCols + c] = 0.0f;
      }
      continue;
    }
    // B is a transpose: in blocks of 16 rows of B, a column's 16 elements are one cache
    // line; the kCols lines read one element at a time (a source row apart, often a
    // multiple of 4 KiB) would evict each other.
    constexpr int kBlock = 16;
    for (int k0 = 0; k0 < k; k0 += kBlock) {
      const int rows = std::min(kBlock, k - k0);
      for (int c = 0; c < width; ++c) {
        const float* column_start = src + k0 + offsets[c];
        for (int kk = 0; kk < rows; ++kk) out[(k0 + kk) * kCols + c] = column_start[kk];
      }
      for (int kk = 0; kk < rows; ++kk) {
        for (int c = width; c < kCols; ++c) out[(k0 + kk) * kCols + c] = 0.0f;
      }
    }
  }
}

// -------------------------------------------------------------------------- the thread team

inline void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Runs job(tid) on the calling thread (tid 0) and on up to n - 1 helpers scheduled on the
// op's intra-op thread pool (TensorFlow's own threads, so the op adds none of its own). The
// caller never waits for a helper that has not started: once its own job returns it closes
// the call, and a helper that starts later returns at once. So a pool busy with other ops
// only means fewer helpers; the job must be correct with any number of threads (`Tickets`).
template <typename Job>
void RunTeam(OpKernelContext* ctx, int n, const Job& job) {
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  auto* pool = workers == nullptr ? nullptr : workers->workers;
  if (n <= 1 || pool == nullptr) {
    job(0);
    return;
  }
  // Bit 0: closed; the rest: twice the number of helpers inside the job.
  auto state = std::make_shared<std::atomic<int>>(0);
  for (int tid = 1; tid < n; ++tid) {
    pool->Schedule([state, tid, &job] {
      int v = state->load(std::memory_order_acquire);
      do {
        if (v & 1) return;  // the call is over: `job` may be gone
      } while (!state->compare_exchange_weak(v, v + 2, std::memory_order_acq_rel));
      job(tid);
      state->fetch_sub(2, std::memory_order_acq_rel);
    });
  }
  job(0);
  for (int spins = 0; (state->fetch_or(1, std::memory_order_acq_rel) >> 1) != 0; ++spins) {
    if (spins < 4096) {
      Pause();
    } else {
      std::this_thread::yield();
    }
  }
}

// The units thread `tid` of `n` owns: [begin, begin + size).
struct Units {
  int begin, size;
};
Units UnitsOf(int tid, int n, int units) {
  const int base = units / n, extra = units % n;
  return {tid * base + std::min(tid, extra), base + (tid < extra ? 1 : 0)};
}

// A layer's hidden units in chunks of kChunkUnits (the last may be smaller), the unit of work:
// a chunk's step is the product with its G * kChunkUnits columns of W_h (G panels) and the
// gate maths of its units.
constexpr int kChunkUnits = kCols;
struct Chunks {
  int units, count;
  explicit Chunks(int units_) : units(units_), count((units_ + kChunkUnits - 1) / kChunkUnits) {}
  int begin(int c) const { return c * kChunkUnits; }
  int width(int c) const { return std::min(kChunkUnits, units - c * kChunkUnits); }
};

// `groups` groups of `items` work items, done in order by whichever threads run them: work(g,
// i) starts once every item of the groups before g is done, and the items of one group run
// side by side. Each group's items are split in `ranges` ranges, one per thread: a thread
// takes the items of its own range first (so a chunk of W_h stays in one core's cache from
// step to step), then whatever is left of the others'. A thread that loses its core
// (TensorFlow runs other ops beside this one) or starts late only takes fewer items, where a
// fixed split would make the others wait for it at every time step.
class Tickets {
 public:
  Tickets(int groups, int items, int ranges)
      : groups_(groups), items_(items), ranges_(std::max(1, std::min(ranges, items))),
        next_(new std::atomic<int>[static_cast<size_t>(groups) * ranges_]) {
    for (int k = 0; k < groups_ * ranges_; ++k) next_[k].store(0, std::memory_order_relaxed);
  }

  template <typename Work>
  void Run(int home, Work work) {
    for (int g = 0; g < groups_; ++g) {
      for (int spins = 0; done_.load(std::memory_order_acquire) < g * items_; ++spins) {
        if (spins < 4096) {
          Pause();
        } else {
          std::this_thread::yield();
        }
      }
      for (int k = 0; k < ranges_; ++k) {
        const int r = (home + k) % ranges_;
        const int begin = r * items_ / ranges_, end = (r + 1) * items_ / ranges_;
        std::atomic<int>& next = next_[g * ranges_ + r];
        for (int i; (i = begin + next.fetch_add(1, std::memory_order_relaxed)) < end;) {
          work(g, i);
          done_.fetch_add(1, std::memory_order_acq_rel);
        }
      }
    }
  }

 private:
  const int groups_, items_, ranges_;
  std::unique_ptr<std::atomic<int>[]> next_;
  std::atomic<int> done_{0};
};

// The team size for `items` items per group: at most `wanted` threads (0: the device's
// intra-op thread count) and no more than items.
int TeamSize(OpKernelContext* ctx, int wanted, int items) {
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  int n = wanted > 0 ? wanted : workers == nullptr ? 1 : workers->num_threads;
  n = std::min(n, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return std::max(1, std::min(n, items));
}

// ------------------------------------------------------------------------- the schedules

// The forward ops' schedule for a layer of `gates` gates: group 0 packs each chunk's columns of
// W_h (gate after gate, the chunk's units of each), group 1 + t is time step t, in which each
// chunk multiplies h = h_prev(t) ([B, H]) by its columns into z (this thread's scratch,
// [B, ldz], the chunk's gate blocks side by side) and runs step(t, u0, nu, h, z, ldz) on its
// units [u0, u0 + nu).
template <typename HPrev, typename Step>
void RunForward(OpKernelContext* ctx, int max_threads, int T, int B, int H, int gates,
                const float* w, HPrev h_prev, Step step) {
  const Chunks chunks(H);
  const int chunk_panels = Panels(gates * kChunkUnits);
  const size_t chunk_floats = static_cast<size_t>(chunk_panels) * H * kCols;
  float* packed = Scratch(kPacked, chunks.count * chunk_floats);
  const int threads = TeamSize(ctx, max_threads, chunks.count);
  Tickets tickets(T + 1, chunks.count, threads);
  RunTeam(ctx, threads, [&](int tid) {
    const int ldz = chunk_panels * kCols;
    float* z = Scratch(kProducts, static_cast<size_t>(B) * ldz);
    tickets.Run(tid, [&](int group, int chunk) {
      const int u0 = chunks.begin(chunk), nu = chunks.width(chunk);
      float* wp = packed + chunk * chunk_floats;
      if (group == 0) {
        Pack(H, gates * nu, w, gates * H, [&](int j) {
          return static_cast<size_t>((j / nu) * H + u0 + j % nu);
        }, wp);
        return;
      }
      const float* h = h_prev(group - 1);
      Gemm(B, H, Panels(gates * nu), h, H, wp, z, ldz);
      step(group - 1, u0, nu, h, z, ldz);
    });
  });
}

// The backward ops' schedule for a layer of `gates` gates. Group 0 packs each chunk's columns
// of W_h^T ((W_h^T)[k, j] = W_h[u0 + j, k]) and runs setup(u0, nu, rec, ldr), `rec` the
// chunk's block ([B, ldr], kept from step to step) of the product below. Then, for t = T-1
// down to 0: group A_t runs grads(t, u0, nu, rec, ldr), which reads `rec` (the gradient
// reaching the chunk's H_t from step t+1) and writes the chunk's columns of d_rec(t)
// ([B, gates * H]); group B_t multiplies the whole d_rec(t) by the chunk's columns of W_h^T
// into `rec` and runs after(u0, nu, rec, ldr). The last group runs finish(u0, nu, rec, ldr).
template <typename DRec, typename Setup, typename Grads, typename After, typename Finish>
void RunBackward(OpKernelContext* ctx, int max_threads, int T, int B, int H, int gates,
                 const float* w, DRec d_rec, Setup setup, Grads grads, After after,
                 Finish finish) {
  const Chunks chunks(H);
  const int ldr = Panels(kChunkUnits) * kCols;
  const size_t chunk_floats = static_cast<size_t>(Panels(kChunkUnits)) * gates * H * kCols;
  float* packed = Scratch(kPacked, chunks.count * chunk_floats);
  float* rec = Scratch(kProducts, static_cast<size_t>(chunks.count) * B * ldr);
  const int threads = TeamSize(ctx, max_threads, chunks.count);
  Tickets tickets(2 * T + 2, chunks.count, threads);
  RunTeam(ctx, threads, [&](int tid) {
    tickets.Run(tid, [&](int group, int chunk) {
      const int u0 = chunks.begin(chunk), nu = chunks.width(chunk);
      float* wt = packed + chunk * chunk_floats;
      float* rc = rec + static_cast<size_t>(chunk) * B * ldr;
      if (group == 0) {
        Pack(gates * H, nu, w, 1, [&](int j) {
          return static_cast<size_t>(u0 + j) * gates * H;
        }, wt);
        setup(u0, nu, rc, ldr);
      } else if (group == 2 * T + 1) {
        finish(u0, nu, rc, ldr);
      } else if (const int t = T - 1 - (group - 1) / 2; (group - 1) % 2 == 0) {
        grads(t, u0, nu, rc, ldr);
      } else {
        Gemm(B, gates * H, Panels(nu), d_rec(t), gates * H, wt, rc, ldr);
        after(u0, nu, rc, ldr);
      }
    });
  });
}

// ------------------------------------------------------------------------------- the ops


std::string Shapes(std::initializer_list<const Tensor*> tensors) {
  std::string s;
  for (const Tensor* t : tensors) s += (s.empty() ? "" : ", ") + t->shape().DebugString();
  return s;
}

// The sequence ops' attribute `max_threads`: the most threads an op uses (0: as many as the
// device's intra-op pool has).
class ThreadedOp : public OpKernel {
 public:
  explicit ThreadedOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_threads", &max_threads_));
  }

 protected:
  int max_threads_ = 0;
};

class LstmSequenceOp : public ThreadedOp {
 public:
  using ThreadedOp::ThreadedOp;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& projected = ctx->input(0);
    const Tensor& h0 = ctx->input(1);
    const Tensor& c0 = ctx->input(2);
    const Tensor& kernel = ctx->input(3);
    const bool ranks = projected.dims() == 3 && h0.dims() == 2 && c0.dims() == 2 &&
                       kernel.dims() == 2;
    const int T = ranks ? projected.dim_size(0) : 0, B = ranks ? projected.dim_size(1) : 0;
    const int H = ranks ? h0.dim_size(1) : 0;
    OP_REQUIRES(ctx, ranks && projected.dim_size(2) == 4 * H && h0.dim_size(0) == B &&
                         c0.shape() == h0.shape() && kernel.dim_size(0) == H &&
                         kernel.dim_size(1) == 4 * H,
                InvalidArgument("RnnzooLstmSequence: shapes [T, B, 4H], [B, H], [B, H], "
                                "[H, 4H] expected, got ",
                                Shapes({&projected, &h0, &c0, &kernel})));
    Tensor *hs_t, *cs_t, *gates_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, H}), &hs_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, H}), &cs_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({T, B, 4 * H}), &gates_t));
    if (T == 0 || B == 0 || H == 0) return;
    const float* x = projected.flat<float>().data();
    const float* w = kernel.flat<float>().data();
    const float* h_init = h0.flat<float>().data();
    const float* c_init = c0.flat<float>().data();
    float* hs = hs_t->flat<float>().data();
    float* cs = cs_t->flat<float>().data();
    float* gates = gates_t->flat<float>().data();
    RunForward(ctx, max_threads_, T, B, H, 4, w, [&](int t) {
      return t ? hs + static_cast<size_t>(t - 1) * B * H : h_init;
    }, [&](int t, int u0, int nu, const float*, const float* z, int ldz) {
      const float* c_prev = t ? cs + static_cast<size_t>(t - 1) * B * H : c_init;
      for (int b = 0; b < B; ++b) {
        const size_t row = static_cast<size_t>(t) * B + b;
        const float* xr = x + row * 4 * H + u0;
        const float* zr = z + static_cast<size_t>(b) * ldz;
        const float* cp = c_prev + static_cast<size_t>(b) * H + u0;
        float* gr = gates + row * 4 * H + u0;
        float* cr = cs + row * H + u0;
        float* hr = hs + row * H + u0;
        ForLanes(nu, [&](auto lanes, int j) {
          using T = decltype(lanes);
          const T i = Sigmoid(Load<T>(xr + j) + Load<T>(zr + j));
          const T f = Sigmoid(Load<T>(xr + H + j) + Load<T>(zr + nu + j));
          const T g = Tanh(Load<T>(xr + 2 * H + j) + Load<T>(zr + 2 * nu + j));
          const T o = Sigmoid(Load<T>(xr + 3 * H + j) + Load<T>(zr + 3 * nu + j));
          const T c = f * Load<T>(cp + j) + i * g;
          Store(gr + j, i);
          Store(gr + H + j, f);
          Store(gr + 2 * H + j, g);
          Store(gr + 3 * H + j, o);
          Store(cr + j, c);
          Store(hr + j, o * Tanh(c));
        });
      }
    });
  }
};

class LstmSequenceGradOp : public ThreadedOp {
 public:
  using ThreadedOp::ThreadedOp;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& kernel = ctx->input(0);
    const Tensor& c0 = ctx->input(1);
    const Tensor& cs_t = ctx->input(2);
    const Tensor& gates_t = ctx->input(3);
    const Tensor& d_hs_t = ctx->input(4);
    const Tensor& d_h_last = ctx->input(5);
    const Tensor& d_c_last = ctx->input(6);
    const bool ranks = cs_t.dims() == 3 && gates_t.dims() == 3 && kernel.dims() == 2 &&
                       c0.dims() == 2;
    const int T = ranks ? cs_t.dim_size(0) : 0, B = ranks ? cs_t.dim_size(1) : 0;
    const int H = ranks ? cs_t.dim_size(2) : 0;
    OP_REQUIRES(ctx, ranks && gates_t.shape() == TensorShape({T, B, 4 * H}) &&
                         d_hs_t.shape() == cs_t.shape() && c0.shape() == TensorShape({B, H}) &&
                         d_h_last.shape() == c0.shape() && d_c_last.shape() == c0.shape() &&
                         kernel.shape() == TensorShape({H, 4 * H}),
                InvalidArgument("RnnzooLstmSequenceGrad: inconsistent shapes ",
                                Shapes({&kernel, &c0, &cs_t, &gates_t, &d_hs_t, &d_h_last,
                                        &d_c_last})));
    Tensor *d_projected_t, *d_h0_t, *d_c0_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, gates_t.shape(), &d_projected_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c0.shape(), &d_h0_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, c0.shape(), &d_c0_t));
    if (B == 0 || H == 0) return;
    const float* w = kernel.flat<float>().data();
    const float* c_init = c0.flat<float>().data();
    const float* cs = cs_t.flat<float>().data();
    const float* gates = gates_t.flat<float>().data();
    const float* d_hs = d_hs_t.flat<float>().data();
    const float* dh_last = d_h_last.flat<float>().data();
    const float* dc_last = d_c_last.flat<float>().data();
    float* dz = d_projected_t->flat<float>().data();
    float* d_h0 = d_h0_t->flat<float>().data();
    float* d_c0 = d_c0_t->flat<float>().data();
    // rec (RunBackward's): dz_{t+1} W_h^T, the gradient reaching H_t from step t+1; dc
    // ([B, H]): the gradient reaching C_t from step t+1.
    float* dc = Scratch(kCarried, static_cast<size_t>(B) * H);
    RunBackward(ctx, max_threads_, T, B, H, 4, w, [&](int t) {
      return dz + static_cast<size_t>(t) * B * 4 * H;
    }, [&](int u0, int nu, float* rec, int ldr) {
      for (int b = 0; b < B; ++b) {
        std::memcpy(rec + static_cast<size_t>(b) * ldr, dh_last + b * H + u0, nu * sizeof(float));
        std::memcpy(dc + static_cast<size_t>(b) * H + u0, dc_last + b * H + u0, nu * sizeof(float));
      }
    }, [&](int t, int u0, int nu, const float* rec, int ldr) {
      const float* c_prev_all = t ? cs + static_cast<size_t>(t - 1) * B * H : c_init;
      for (int b = 0; b < B; ++b) {
        const size_t row = static_cast<size_t>(t) * B + b;
        const float* gr = gates + row * 4 * H + u0;
        const float* dor = d_hs + row * H + u0;
        const float* rr = rec + static_cast<size_t>(b) * ldr;
        const float* cr = cs + row * H + u0;
        const float* cp = c_prev_all + static_cast<size_t>(b) * H + u0;
        float* dcr = dc + static_cast<size_t>(b) * H + u0;
        float* zr = dz + row * 4 * H + u0;
        ForLanes(nu, [&](auto lanes, int j) {
          using T = decltype(lanes);
          const T one = Splat<T>(1.0f);
          const T i = Load<T>(gr + j), f = Load<T>(gr + H + j);
          const T g = Load<T>(gr + 2 * H + j), o = Load<T>(gr + 3 * H + j);
          const T d_h = Load<T>(dor + j) + Load<T>(rr + j);
          const T tanh_c = Tanh(Load<T>(cr + j));
          const T d_c = Load<T>(dcr + j) + d_h * o * (one - tanh_c * tanh_c);
          Store(zr + j, d_c * g * i * (one - i));
          Store(zr + H + j, d_c * Load<T>(cp + j) * f * (one - f));
          Store(zr + 2 * H + j, d_c * i * (one - g * g));
          Store(zr + 3 * H + j, d_h * tanh_c * o * (one - o));
          Store(dcr + j, d_c * f);
        });
      }
    }, [](int, int, float*, int) {}, [&](int u0, int nu, const float* rec, int ldr) {
      for (int b = 0; b < B; ++b) {
        std::memcpy(d_h0 + b * H + u0, rec + static_cast<size_t>(b) * ldr, nu * sizeof(float));
        std::memcpy(d_c0 + b * H + u0, dc + static_cast<size_t>(b) * H + u0, nu * sizeof(float));
      }
    });
  }
};

class GruSequenceOp : public ThreadedOp {
 public:
  using ThreadedOp::ThreadedOp;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& projected = ctx->input(0);
    const Tensor& h0 = ctx->input(1);
    const Tensor& kernel = ctx->input(2);
    const Tensor& bias = ctx->input(3);
    const bool ranks = projected.dims() == 3 && h0.dims() == 2 && kernel.dims() == 2 &&
                       bias.dims() == 1;
    const int T = ranks ? projected.dim_size(0) : 0, B = ranks ? projected.dim_size(1) : 0;
    const int H = ranks ? h0.dim_size(1) : 0;
    OP_REQUIRES(ctx, ranks && projected.dim_size(2) == 3 * H && h0.dim_size(0) == B &&
                         kernel.shape() == TensorShape({H, 3 * H}) && bias.dim_size(0) == 3 * H,
                InvalidArgument("RnnzooGruSequence: shapes [T, B, 3H], [B, H], [H, 3H], [3H] "
                                "expected, got ", Shapes({&projected, &h0, &kernel, &bias})));
    Tensor *hs_t, *saved_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, H}), &hs_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, 4 * H}), &saved_t));
    if (T == 0 || B == 0 || H == 0) return;
    const float* x = projected.flat<float>().data();
    const float* w = kernel.flat<float>().data();
    const float* b_h = bias.flat<float>().data();
    const float* h_init = h0.flat<float>().data();
    float* hs = hs_t->flat<float>().data();
    float* saved = saved_t->flat<float>().data();
    RunForward(ctx, max_threads_, T, B, H, 3, w, [&](int t) {
      return t ? hs + static_cast<size_t>(t - 1) * B * H : h_init;
    }, [&](int t, int u0, int nu, const float* h_prev, const float* z, int ldz) {
      const float* bz = b_h + u0;
      const float* br = b_h + H + u0;
      const float* bh = b_h + 2 * H + u0;
      for (int b = 0; b < B; ++b) {
        const size_t row = static_cast<size_t>(t) * B + b;
        const float* xr = x + row * 3 * H + u0;
        const float* zr = z + static_cast<size_t>(b) * ldz;
        const float* hp = h_prev + static_cast<size_t>(b) * H + u0;
        float* sr = saved + row * 4 * H + u0;
        float* hr = hs + row * H + u0;
        // As the graph: (x_z + b_z) + rec_z, (x_r + b_r) + rec_r, x_h + R * (rec_h + b_h).
        ForLanes(nu, [&](auto lanes, int j) {
          using T = decltype(lanes);
          const T zg = Sigmoid((Load<T>(xr + j) + Load<T>(bz + j)) + Load<T>(zr + j));
          const T r = Sigmoid((Load<T>(xr + H + j) + Load<T>(br + j)) + Load<T>(zr + nu + j));
          const T rec_h = Load<T>(zr + 2 * nu + j) + Load<T>(bh + j);
          const T cand = Tanh(Load<T>(xr + 2 * H + j) + r * rec_h);
          Store(sr + j, zg);
          Store(sr + H + j, r);
          Store(sr + 2 * H + j, cand);
          Store(sr + 3 * H + j, rec_h);
          Store(hr + j, zg * Load<T>(hp + j) + (Splat<T>(1.0f) - zg) * cand);
        });
      }
    });
  }
};

class GruSequenceGradOp : public ThreadedOp {
 public:
  using ThreadedOp::ThreadedOp;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& kernel = ctx->input(0);
    const Tensor& h0 = ctx->input(1);
    const Tensor& hs_t = ctx->input(2);
    const Tensor& saved_t = ctx->input(3);
    const Tensor& d_hs_t = ctx->input(4);
    const Tensor& d_h_last = ctx->input(5);
    const bool ranks = hs_t.dims() == 3 && saved_t.dims() == 3 && kernel.dims() == 2 &&
                       h0.dims() == 2;
    const int T = ranks ? hs_t.dim_size(0) : 0, B = ranks ? hs_t.dim_size(1) : 0;
    const int H = ranks ? hs_t.dim_size(2) : 0;
    OP_REQUIRES(ctx, ranks && saved_t.shape() == TensorShape({T, B, 4 * H}) &&
                         d_hs_t.shape() == hs_t.shape() && h0.shape() == TensorShape({B, H}) &&
                         d_h_last.shape() == h0.shape() &&
                         kernel.shape() == TensorShape({H, 3 * H}),
                InvalidArgument("RnnzooGruSequenceGrad: inconsistent shapes ",
                                Shapes({&kernel, &h0, &hs_t, &saved_t, &d_hs_t, &d_h_last})));
    Tensor *d_projected_t, *d_rec_t, *d_h0_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, 3 * H}), &d_projected_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, 3 * H}), &d_rec_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, h0.shape(), &d_h0_t));
    if (B == 0 || H == 0) return;
    const float* w = kernel.flat<float>().data();
    const float* h_init = h0.flat<float>().data();
    const float* hs = hs_t.flat<float>().data();
    const float* saved = saved_t.flat<float>().data();
    const float* d_hs = d_hs_t.flat<float>().data();
    const float* dh_last = d_h_last.flat<float>().data();
    float* d_proj = d_projected_t->flat<float>().data();
    float* d_rec = d_rec_t->flat<float>().data();
    float* d_h0 = d_h0_t->flat<float>().data();
    // rec (RunBackward's): d_recurrent_{t+1} W_h^T; carry ([B, H]): the whole gradient
    // reaching H_t from step t+1 (rec + dH_{t+1} * Z_{t+1}).
    float* carry = Scratch(kCarried, static_cast<size_t>(B) * H);
    RunBackward(ctx, max_threads_, T, B, H, 3, w, [&](int t) {
      return d_rec + static_cast<size_t>(t) * B * 3 * H;
    }, [&](int u0, int nu, float*, int) {
      for (int b = 0; b < B; ++b) {
        std::memcpy(carry + static_cast<size_t>(b) * H + u0, dh_last + b * H + u0,
                    nu * sizeof(float));
      }
    }, [&](int t, int u0, int nu, const float*, int) {
      const float* h_prev_all = t ? hs + static_cast<size_t>(t - 1) * B * H : h_init;
      for (int b = 0; b < B; ++b) {
        const size_t row = static_cast<size_t>(t) * B + b;
        const float* sr = saved + row * 4 * H + u0;
        const float* dor = d_hs + row * H + u0;
        const float* hp = h_prev_all + static_cast<size_t>(b) * H + u0;
        float* cr = carry + static_cast<size_t>(b) * H + u0;
        float* pr = d_proj + row * 3 * H + u0;
        float* rr = d_rec + row * 3 * H + u0;
        ForLanes(nu, [&](auto lanes, int j) {
          using T = decltype(lanes);
          const T one = Splat<T>(1.0f);
          const T zg = Load<T>(sr + j), r = Load<T>(sr + H + j);
          const T cand = Load<T>(sr + 2 * H + j), rec_h = Load<T>(sr + 3 * H + j);
          const T d_h = Load<T>(dor + j) + Load<T>(cr + j);
          const T d_x_h = d_h * (one - zg) * (one - cand * cand);
          const T d_x_z = d_h * (Load<T>(hp + j) - cand) * zg * (one - zg);
          const T d_x_r = d_x_h * rec_h * r * (one - r);
          Store(pr + j, d_x_z);
          Store(pr + H + j, d_x_r);
          Store(pr + 2 * H + j, d_x_h);
          Store(rr + j, d_x_z);
          Store(rr + H + j, d_x_r);
          Store(rr + 2 * H + j, d_x_h * r);
          Store(cr + j, d_h * zg);  // the part of dH_{t-1} that does not go through W_h
        });
      }
    }, [&](int u0, int nu, const float* rec, int ldr) {  // carry += d_recurrent_t W_h^T
      for (int b = 0; b < B; ++b) {
        float* cr = carry + static_cast<size_t>(b) * H + u0;
        const float* rr = rec + static_cast<size_t>(b) * ldr;
        ForLanes(nu, [&](auto lanes, int j) {
          using T = decltype(lanes);
          Store(cr + j, Load<T>(cr + j) + Load<T>(rr + j));
        });
      }
    }, [&](int u0, int nu, const float*, int) {
      for (int b = 0; b < B; ++b) {
        std::memcpy(d_h0 + b * H + u0, carry + static_cast<size_t>(b) * H + u0, nu * sizeof(float));
      }
    });
  }
};

class RowsGradOp : public ThreadedOp {
 public:
  using ThreadedOp::ThreadedOp;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& ids_t = ctx->input(0);
    const Tensor& grad_t = ctx->input(1);
    const Tensor& num_rows_t = ctx->input(2);
    OP_REQUIRES(ctx, ids_t.dims() == 1 && grad_t.dims() == 2 &&
                         grad_t.dim_size(0) == ids_t.dim_size(0) && num_rows_t.dims() == 0,
                InvalidArgument("RnnzooRowsGrad: shapes [N], [N, C], [] expected, got ",
                                Shapes({&ids_t, &grad_t, &num_rows_t})));
    const int N = ids_t.dim_size(0), C = grad_t.dim_size(1);
    const int rows = num_rows_t.scalar<int32_t>()();
    const int32_t* ids = ids_t.flat<int32_t>().data();
    for (int n = 0; n < N; ++n) {
      OP_REQUIRES(ctx, ids[n] >= 0 && ids[n] < rows,
                  InvalidArgument("RnnzooRowsGrad: ids[", n, "] = ", ids[n], " is not in [0, ",
                                  rows, ")"));
    }
    Tensor *d_table_t, *d_bias_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows, C}), &d_table_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({C}), &d_bias_t));
    const float* grad = grad_t.flat<float>().data();
    float* d_table = d_table_t->flat<float>().data();
    float* d_bias = d_bias_t->flat<float>().data();
    // Thread k of n sums columns [k C / n, (k + 1) C / n) of every row, each range once
    // (a late thread takes what is left): no two threads write one element.
    const int n = std::max(1, std::min(TeamSize(ctx, max_threads_, C), C / (8 * kLanes)));
    Tickets tickets(1, n, n);
    RunTeam(ctx, n, [&](int tid) { tickets.Run(tid, [&](int, int range) {
      const Units part = UnitsOf(range, n, C);
      const int begin = part.begin, width = part.size;
      for (int r = 0; r < rows; ++r) {
        std::fill_n(d_table + static_cast<size_t>(r) * C + begin, width, 0.0f);
      }
      std::fill_n(d_bias + begin, width, 0.0f);
      for (int k = 0; k < N; ++k) {
        const float* g = grad + static_cast<size_t>(k) * C + begin;
        float* row = d_table + static_cast<size_t>(ids[k]) * C + begin;
        ForLanes(width, [&](auto lanes, int j) {
          using T = decltype(lanes);
          Store(row + j, Load<T>(row + j) + Load<T>(g + j));
        });
      }
      for (int r = 0; r < rows; ++r) {  // d_bias: the sum of d_table's rows
        const float* row = d_table + static_cast<size_t>(r) * C + begin;
        float* bias = d_bias + begin;
        ForLanes(width, [&](auto lanes, int j) {
          using T = decltype(lanes);
          Store(bias + j, Load<T>(bias + j) + Load<T>(row + j));
        });
      }
    }); });
  }
};

}  // namespace

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// [T] + shape, the shape of a sequence of `shape`s (T from input 0).
absl::Status Sequence(InferenceContext* c, ShapeHandle shape, ShapeHandle* out) {
  return c->Concatenate(c->Vector(c->Dim(c->input(0), 0)), shape, out);
}

// [B, k * H] from a [B, H] input.
absl::Status Widened(InferenceContext* c, int input, int k, ShapeHandle* out) {
  ::tensorflow::shape_inference::DimensionHandle wide;
  TF_RETURN_IF_ERROR(c->Multiply(c->Dim(c->input(input), 1), k, &wide));
  return c->ReplaceDim(c->input(input), 1, wide, out);
}

REGISTER_OP("RnnzooLstmSequence")
    .Input("projected: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("kernel: float")
    .Output("hs: float")
    .Output("cs: float")
    .Output("gates: float")
    .Attr("max_threads: int = 0")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle hs;
      TF_RETURN_IF_ERROR(Sequence(c, c->input(1), &hs));
      c->set_output(0, hs);
      c->set_output(1, hs);
      c->set_output(2, c->input(0));
      return absl::OkStatus();
    });

REGISTER_OP("RnnzooLstmSequenceGrad")
    .Input("kernel: float")
    .Input("c0: float")
    .Input("cs: float")
    .Input("gates: float")
    .Input("d_hs: float")
    .Input("d_h_last: float")
    .Input("d_c_last: float")
    .Output("d_projected: float")
    .Output("d_h0: float")
    .Output("d_c0: float")
    .Attr("max_threads: int = 0")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(3));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return absl::OkStatus();
    });

REGISTER_OP("RnnzooGruSequence")
    .Input("projected: float")
    .Input("h0: float")
    .Input("kernel: float")
    .Input("recurrent_bias: float")
    .Output("hs: float")
    .Output("saved: float")
    .Attr("max_threads: int = 0")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle hs, wide, saved;
      TF_RETURN_IF_ERROR(Sequence(c, c->input(1), &hs));
      TF_RETURN_IF_ERROR(Widened(c, 1, 4, &wide));
      TF_RETURN_IF_ERROR(Sequence(c, wide, &saved));
      c->set_output(0, hs);
      c->set_output(1, saved);
      return absl::OkStatus();
    });

REGISTER_OP("RnnzooGruSequenceGrad")
    .Input("kernel: float")
    .Input("h0: float")
    .Input("hs: float")
    .Input("saved: float")
    .Input("d_hs: float")
    .Input("d_h_last: float")
    .Output("d_projected: float")
    .Output("d_recurrent: float")
    .Output("d_h0: float")
    .Attr("max_threads: int = 0")
    .SetShapeFn([](InferenceContext* c) {
      // [T, B, 3H] from hs [T, B, H].
      ShapeHandle wide;
      ::tensorflow::shape_inference::DimensionHandle three_h;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(c->input(2), 2), 3, &three_h));
      TF_RETURN_IF_ERROR(c->ReplaceDim(c->input(2), 2, three_h, &wide));
      c->set_output(0, wide);
      c->set_output(1, wide);
      c->set_output(2, c->input(1));
      return absl::OkStatus();
    });

// The gradient of `gather(table, ids) + bias` (a one-hot input's projection):
// d_table[r] = sum of grad[n] over the n with ids[n] = r, d_bias = sum_n grad[n]. One pass over
// grad, where TensorFlow runs an UnsortedSegmentSum and a BiasAddGrad.
REGISTER_OP("RnnzooRowsGrad")
    .Input("ids: int32")
    .Input("grad: float")
    .Input("num_rows: int32")
    .Output("d_table: float")
    .Output("d_bias: float")
    .Attr("max_threads: int = 0")
    .SetShapeFn([](InferenceContext* c) {
      ::tensorflow::shape_inference::DimensionHandle rows;
      TF_RETURN_IF_ERROR(c->MakeDimForScalarInput(2, &rows));
      c->set_output(0, c->Matrix(rows, c->Dim(c->input(1), 1)));
      c->set_output(1, c->Vector(c->Dim(c->input(1), 1)));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("RnnzooRowsGrad").Device(::tensorflow::DEVICE_CPU), RowsGradOp);
REGISTER_KERNEL_BUILDER(Name("RnnzooLstmSequence").Device(::tensorflow::DEVICE_CPU),
                        LstmSequenceOp);
REGISTER_KERNEL_BUILDER(Name("RnnzooLstmSequenceGrad").Device(::tensorflow::DEVICE_CPU),
                        LstmSequenceGradOp);
REGISTER_KERNEL_BUILDER(Name("RnnzooGruSequence").Device(::tensorflow::DEVICE_CPU),
                        GruSequenceOp);
REGISTER_KERNEL_BUILDER(Name("RnnzooGruSequenceGrad").Device(::tensorflow::DEVICE_CPU),
                        GruSequenceGradOp);

}  // namespace rnnzoo

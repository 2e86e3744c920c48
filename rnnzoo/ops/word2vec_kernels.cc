// word2vec.c's training loop for a batch of examples, as one TensorFlow op.
//
// RnnzooWord2vecNegativeSgd(embeddings, output_weights, inputs, mask, labels, negatives, lr)
// updates two resource variables in place, example after example, exactly as word2vec.c's
// negative-sampling branch (and gensim's `fast_sentence_*_neg`) does:
//
//   h      = sum_c mask[i,c] E[inputs[i,c]]             (divided by sum_c mask[i,c] if `mean`)
//   e      = 0
//   for t in (labels[i], negatives[i,0..K-1]), label l = 1 for the first, 0 for the others,
//       skipping a negative equal to labels[i] (word2vec.c's `if (target == word) continue`),
//       and, if max_logit > 0, a target with |W[t] . h| >= max_logit (gensim's MAX_EXP = 6):
//       g  = (l - sigmoid(W[t] . h)) * lr
//       e += g * W[t];   W[t] += g * h
//   E[inputs[i,c]] += e   for every masked-in c (in full, also when `mean`: word2vec.c, gensim)
//
// and returns the summed loss  sum_i [ -log sigmoid(W[l] . h) - sum_k log sigmoid(-W[n_k] . h) ]
// of each example before its own update. Rows are processed in order on one thread: the result
// is deterministic, and equals a NumPy loop over the examples (tests/models/test_word2vec_ops.py).
//
// The pure-TensorFlow path (rnnzoo/models/word2vec.py) takes the same update summed over the
// batch in one step; this op is the per-example update of word2vec.c, ~10x faster on CPU.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace rnnzoo {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::Var;
using ::tensorflow::errors::InvalidArgument;

REGISTER_OP("RnnzooWord2vecNegativeSgd")
    .Input("embeddings: resource")
    .Input("output_weights: resource")
    .Input("inputs: int32")
    .Input("mask: bool")
    .Input("labels: int32")
    .Input("cdf: float64")
    .Input("seed: int64")
    .Input("lr: float")
    .Output("loss: float")
    .Output("negatives: int32")
    .Attr("num_negatives: int >= 1")
    .Attr("mean: bool = false")
    .Attr("num_threads: int >= 1 = 1")
    .Attr("max_logit: float = 0")
    .SetIsStateful()
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      int64_t k;
      TF_RETURN_IF_ERROR(c->GetAttr("num_negatives", &k));
      c->set_output(0, c->Scalar());
      c->set_output(1, c->Matrix(c->Dim(c->input(4), 0), k));
      return absl::OkStatus();
    })
    .Doc("word2vec.c's per-example negative-sampling SGD update; see word2vec_kernels.cc.");

namespace {

// log(1 + exp(x)) without overflow.
inline double Softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// x . y over n floats, in eight partial sums (vectorised; a single sum is a serial chain).
inline float Dot(const float* __restrict x, const float* __restrict y, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int j = 0; j < 8; ++j) s[j] += x[d + j] * y[d + j];
  float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; d < n; ++d) total += x[d] * y[d];
  return total;
}

// y += a * x over n floats.
inline void Axpy(float a, const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t d = 0; d < n; ++d) y[d] += a * x[d];
}

// The variable's tensor, unshared: a tensor that a reader still holds is copied first, so
// the in-place update never changes a value someone already read (TF's own sparse updates do
// the same, EnsureSparseVariableAccess). Call with the variable's mutex held.
absl::Status Exclusive(OpKernelContext* ctx, Var* var, Tensor** out) {
  Tensor* t = var->tensor();
  if (!t->IsInitialized()) return InvalidArgument("a word2vec table is not initialised");
  if (t->dtype() != ::tensorflow::DT_FLOAT || t->dims() != 2)
    return InvalidArgument("the word2vec tables must be float32 matrices, got ",
                           t->DebugString());
  if (!t->RefCountIsOne()) {
    Tensor copy;
    TF_RETURN_IF_ERROR(ctx->allocate_temp(t->dtype(), t->shape(), &copy));
    std::memcpy(copy.flat<float>().data(), t->flat<float>().data(),
                t->NumElements() * sizeof(float));
    *t = copy;
  }
  var->copy_on_read_mode.store(true);
  *out = var->tensor();
  return absl::OkStatus();
}

}  // namespace

// SplitMix64 (Steele et al. 2014): seeds and draws the negatives' uniform numbers.
inline uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A new 64-bit state from two: SplitMix64 of `a`, combined with `b`.
inline uint64_t Mix(uint64_t a, uint64_t b) { return SplitMix64(&a) ^ b; }

class Word2vecNegativeSgdOp : public OpKernel {
 public:
  explicit Word2vecNegativeSgdOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mean", &mean_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_negatives", &num_negatives_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_threads", &num_threads_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_logit", &max_logit_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& inputs = ctx->input(2);
    const Tensor& mask = ctx->input(3);
    const Tensor& labels = ctx->input(4);
    const Tensor& cdf_t = ctx->input(5);
    const Tensor& seed_t = ctx->input(6);
    const Tensor& lr_t = ctx->input(7);
    OP_REQUIRES(ctx, inputs.dims() == 2 && mask.shape() == inputs.shape(),
                InvalidArgument("inputs and mask must be [batch, C] alike, got ",
                                inputs.shape().DebugString(), " and ",
                                mask.shape().DebugString()));
    const int64_t batch = inputs.dim_size(0), slots = inputs.dim_size(1);
    OP_REQUIRES(ctx, labels.dims() == 1 && labels.dim_size(0) == batch,
                InvalidArgument("labels must be [", batch, "], got ",
                                labels.shape().DebugString()));
    OP_REQUIRES(ctx, seed_t.dims() == 1 && seed_t.dim_size(0) == 2,
                InvalidArgument("seed must be int64 [2], got ", seed_t.shape().DebugString()));
    OP_REQUIRES(ctx, ::tensorflow::TensorShapeUtils::IsScalar(lr_t.shape()),
                InvalidArgument("lr must be a scalar"));
    const float lr = lr_t.scalar<float>()();

    ::tensorflow::core::RefCountPtr<Var> e_var, w_var;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &e_var));
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 1), &w_var));
    OP_REQUIRES(ctx, e_var.get() != w_var.get(),
                InvalidArgument("embeddings and output_weights must be two variables"));
    // Always lock in address order, so two ops on the same pair cannot deadlock.
    Var* first = e_var.get() < w_var.get() ? e_var.get() : w_var.get();
    Var* second = first == e_var.get() ? w_var.get() : e_var.get();
    ::tsl::mutex_lock lock_first(*first->mu());
    ::tsl::mutex_lock lock_second(*second->mu());
    Tensor *e_tensor, *w_tensor;
    OP_REQUIRES_OK(ctx, Exclusive(ctx, e_var.get(), &e_tensor));
    OP_REQUIRES_OK(ctx, Exclusive(ctx, w_var.get(), &w_tensor));
    const int64_t rows = e_tensor->dim_size(0), dim = e_tensor->dim_size(1);
    OP_REQUIRES(ctx, w_tensor->shape() == e_tensor->shape(),
                InvalidArgument("embeddings ", e_tensor->shape().DebugString(),
                                " and output_weights ", w_tensor->shape().DebugString(),
                                " must have the same shape"));
    OP_REQUIRES(ctx, cdf_t.dims() == 1 && cdf_t.dim_size(0) == rows,
                InvalidArgument("cdf must be [", rows, "], got ", cdf_t.shape().DebugString()));

    const int32_t* in = inputs.flat<int32_t>().data();
    const bool* on = mask.flat<bool>().data();
    const int32_t* lab = labels.flat<int32_t>().data();
    for (int64_t i = 0; i < batch * slots; ++i)
      OP_REQUIRES(ctx, !on[i] || (in[i] >= 0 && in[i] < rows),
                  InvalidArgument("inputs holds id ", in[i], ", outside [0, ", rows, ")"));
    for (int64_t i = 0; i < batch; ++i)
      OP_REQUIRES(ctx, lab[i] >= 0 && lab[i] < rows,
                  InvalidArgument("labels holds id ", lab[i], ", outside [0, ", rows, ")"));

    Tensor* loss_t = nullptr;
    Tensor* negatives_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, {}, &loss_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, {batch, num_negatives_}, &negatives_t));
    Chunk work{e_tensor->flat<float>().data(), w_tensor->flat<float>().data(), in, on, lab,
               cdf_t.flat<double>().data(), negatives_t->flat<int32_t>().data(), rows, dim,
               slots, lr};
    const uint64_t seed0 = static_cast<uint64_t>(seed_t.flat<int64_t>()(0));
    const uint64_t seed1 = static_cast<uint64_t>(seed_t.flat<int64_t>()(1));
    // Thread t takes rows [t*B/T, (t+1)*B/T), its negatives drawn from seed (s0, s1, t). With
    // several threads, rows that share a word update it concurrently ("Hogwild", as word2vec.c
    // and gensim's workers): fast, but not bitwise reproducible.
    const int threads = static_cast<int>(std::min<int64_t>(num_threads_, std::max<int64_t>(
        1, batch)));
    std::vector<double> losses(threads, 0.0);
    auto run = [&](int t) {
      uint64_t state = Mix(Mix(seed0, seed1), static_cast<uint64_t>(t));
      losses[t] = Train(work, batch * t / threads, batch * (t + 1) / threads, state);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(run, t);
    run(0);
    for (auto& thread : pool) thread.join();
    double loss = 0.0;
    for (double l : losses) loss += l;
    loss_t->scalar<float>()() = static_cast<float>(loss);
  }

 private:
  struct Chunk {
    float* E;
    float* W;
    const int32_t* in;
    const bool* on;
    const int32_t* lab;
    const double* cdf;
    int32_t* neg;
    int64_t rows, dim, slots;
    float lr;
  };

  // Rows [begin, end) in order; returns their summed loss.
  double Train(const Chunk& c, int64_t begin, int64_t end, uint64_t state) const {
    const int64_t dim = c.dim, slots = c.slots, k_neg = num_negatives_;
    // The negatives first (row after row: the same draws as drawing them on the way), so that
    // the rows of an example can be fetched from memory while an earlier one trains.
    for (int64_t i = begin * k_neg; i < end * k_neg; ++i) {
      const double u = static_cast<double>(SplitMix64(&state) >> 11) * 0x1.0p-53;
      const int64_t id = std::upper_bound(c.cdf, c.cdf + c.rows, u) - c.cdf;
      c.neg[i] = static_cast<int32_t>(std::min<int64_t>(id, c.rows - 1));
    }
    auto prefetch = [&c, dim](const float* table, int32_t id) {
      const char* row = reinterpret_cast<const char*>(table + static_cast<int64_t>(id) * dim);
      for (int64_t b = 0; b < dim * 4; b += 64) __builtin_prefetch(row + b, 1);
    };
    std::vector<float> h(dim), err(dim);
    double loss = 0.0;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t ahead = i + kPrefetchDistance;
      if (ahead < end) {  // the table rows of a later example: memory latency, not FLOPs,
        for (int64_t s = 0; s < slots; ++s)  // bounds this loop
          if (c.on[ahead * slots + s]) prefetch(c.E, c.in[ahead * slots + s]);
        prefetch(c.W, c.lab[ahead]);
        for (int64_t k = 0; k < k_neg; ++k) prefetch(c.W, c.neg[ahead * k_neg + k]);
      }
      const int32_t* negs = c.neg + i * k_neg;
      std::fill(h.begin(), h.end(), 0.0f);
      int count = 0;
      for (int64_t s = 0; s < slots; ++s) {
        if (!c.on[i * slots + s]) continue;
        Axpy(1.0f, c.E + static_cast<int64_t>(c.in[i * slots + s]) * dim, h.data(), dim);
        ++count;
      }
      if (count == 0) continue;  // word2vec.c skips a word without context
      if (mean_ && count > 1) {
        const float inv = 1.0f / count;
        for (int64_t d = 0; d < dim; ++d) h[d] *= inv;
      }
      std::fill(err.begin(), err.end(), 0.0f);
      for (int64_t k = -1; k < k_neg; ++k) {
        const int32_t target = k < 0 ? c.lab[i] : negs[k];
        if (k >= 0 && target == c.lab[i]) continue;
        const float label = k < 0 ? 1.0f : 0.0f;
        float* w = c.W + static_cast<int64_t>(target) * dim;
        const float f = Dot(w, h.data(), dim);
        loss += Softplus(k < 0 ? -f : f);
        // gensim leaves a target alone once |f| reaches MAX_EXP (max_logit 6).
        if (max_logit_ > 0 && std::fabs(f) >= max_logit_) continue;
        const float g = (label - 1.0f / (1.0f + std::exp(-f))) * c.lr;
        Axpy(g, w, err.data(), dim);
        Axpy(g, h.data(), w, dim);
      }
      for (int64_t s = 0; s < slots; ++s) {
        if (!c.on[i * slots + s]) continue;
        Axpy(1.0f, err.data(), c.E + static_cast<int64_t>(c.in[i * slots + s]) * dim, dim);
      }
    }
    return loss;
  }

  static constexpr int64_t kPrefetchDistance = 4;
  bool mean_;
  float max_logit_;
  int64_t num_negatives_;
  int64_t num_threads_;
};

REGISTER_KERNEL_BUILDER(Name("RnnzooWord2vecNegativeSgd").Device(::tensorflow::DEVICE_CPU),
                        Word2vecNegativeSgdOp);

}  // namespace rnnzoo

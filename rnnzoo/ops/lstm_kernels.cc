// An LSTM layer over a whole sequence as one TensorFlow op, forward and backward.
//
// RnnzooLstmSequence(projected [T, B, 4H], h0 [B, H], c0 [B, H], kernel [H, 4H])
//     -> hs [T, B, H], cs [T, B, H], gates [T, B, 4H]
// runs, for t = 1..T, with Keras' gate order i, f, g, o (`rnnzoo.cells.lstm._lstm_update`):
//
//     z      = projected_t + H_{t-1} W_h                     one [B, H] x [H, 4H] matmul
//     I, F, G, O = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
//     C_t    = F * C_{t-1} + I * G
//     H_t    = O * tanh(C_t)
//
// and returns every H_t, every C_t and the activated gates [I | F | G | O] (what the backward
// pass needs). RnnzooLstmSequenceGrad(kernel, c0, cs, gates, d_hs, d_h_last, d_c_last)
//     -> d_projected [T, B, 4H], d_h0 [B, H], d_c0 [B, H]
// runs the backward pass from t = T down to 1, `dH` the total gradient reaching H_t:
//
//     dC   = dC_{t+1} * F_{t+1} + dH * O * (1 - tanh(C_t)^2)
//     dz_t = [dC * G * I(1-I), dC * C_{t-1} * F(1-F), dC * I * (1-G^2), dH * tanh(C_t) * O(1-O)]
//     dH_{t-1} += dz_t W_h^T                                  one [B, 4H] x [4H, H] matmul
//
// The recurrent weight's gradient, sum_t H_{t-1}^T dz_t, is one large matmul the caller does
// after the loop (rnnzoo/models/recurrence.py), as the pure-TensorFlow path does. The matmuls
// and the elementwise maths run on the op's intra-op thread pool (Eigen's ThreadPoolDevice):
// two ops per sequence instead of ~40 TensorFlow ops per time step, each with its own executor
// cost (the point of this op on a CPU).

#define EIGEN_USE_THREADS

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rnnzoo {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using Index = Eigen::Index;
using UMatrix = Eigen::TensorMap<Eigen::Tensor<float, 2, Eigen::RowMajor>>;
using UConstMatrix = Eigen::TensorMap<Eigen::Tensor<const float, 2, Eigen::RowMajor>>;

namespace {

const Eigen::array<Eigen::IndexPair<int>, 1> kMatMul = {Eigen::IndexPair<int>(1, 0)};

// Column block k (of width h) of a row-major [b, n] matrix.
template <typename M>
auto Block(M& m, Index b, Index h, int k) {
  return m.slice(Eigen::array<Index, 2>{0, k * h}, Eigen::array<Index, 2>{b, h});
}

}  // namespace

REGISTER_OP("RnnzooLstmSequence")
    .Input("projected: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("kernel: float")
    .Output("hs: float")
    .Output("cs: float")
    .Output("gates: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      auto p = c->input(0);
      auto h0 = c->input(1);
      ::tensorflow::shape_inference::ShapeHandle hs;
      TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(c->Dim(p, 0)), h0, &hs));
      c->set_output(0, hs);
      c->set_output(1, hs);
      c->set_output(2, p);
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
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(3));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return absl::OkStatus();
    });

class LstmSequenceOp : public OpKernel {
 public:
  explicit LstmSequenceOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& projected = ctx->input(0);
    const Tensor& h0 = ctx->input(1);
    const Tensor& c0 = ctx->input(2);
    const Tensor& kernel = ctx->input(3);
    OP_REQUIRES(ctx, projected.dims() == 3 && h0.dims() == 2 && c0.dims() == 2 &&
                         kernel.dims() == 2,
                InvalidArgument("RnnzooLstmSequence: ranks 3, 2, 2, 2 expected"));
    const Index T = projected.dim_size(0), B = projected.dim_size(1);
    const Index H = h0.dim_size(1);
    OP_REQUIRES(ctx, projected.dim_size(2) == 4 * H && h0.dim_size(0) == B &&
                         c0.dim_size(0) == B && c0.dim_size(1) == H &&
                         kernel.dim_size(0) == H && kernel.dim_size(1) == 4 * H,
                InvalidArgument("RnnzooLstmSequence: shapes [T, B, 4H], [B, H], [B, H], "
                                "[H, 4H] expected, got ", projected.shape().DebugString(), ", ",
                                h0.shape().DebugString(), ", ", c0.shape().DebugString(), ", ",
                                kernel.shape().DebugString()));
    Tensor *hs, *cs, *gates;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, H}), &hs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, H}), &cs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({T, B, 4 * H}), &gates));
    const auto& d = ctx->eigen_cpu_device();
    UConstMatrix w(kernel.flat<float>().data(), H, 4 * H);
    for (Index t = 0; t < T; ++t) {
      UConstMatrix x(projected.flat<float>().data() + t * B * 4 * H, B, 4 * H);
      UConstMatrix h_prev(t ? hs->flat<float>().data() + (t - 1) * B * H
                            : h0.flat<float>().data(), B, H);
      UConstMatrix c_prev(t ? cs->flat<float>().data() + (t - 1) * B * H
                            : c0.flat<float>().data(), B, H);
      UMatrix z(gates->flat<float>().data() + t * B * 4 * H, B, 4 * H);
      UMatrix h(hs->flat<float>().data() + t * B * H, B, H);
      UMatrix c(cs->flat<float>().data() + t * B * H, B, H);
      z.device(d) = x + h_prev.contract(w, kMatMul);
      Block(z, B, H, 0).device(d) = Block(z, B, H, 0).sigmoid();
      Block(z, B, H, 1).device(d) = Block(z, B, H, 1).sigmoid();
      Block(z, B, H, 2).device(d) = Block(z, B, H, 2).tanh();
      Block(z, B, H, 3).device(d) = Block(z, B, H, 3).sigmoid();
      c.device(d) = Block(z, B, H, 1) * c_prev + Block(z, B, H, 0) * Block(z, B, H, 2);
      h.device(d) = Block(z, B, H, 3) * c.tanh();
    }
  }
};

class LstmSequenceGradOp : public OpKernel {
 public:
  explicit LstmSequenceGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& kernel = ctx->input(0);
    const Tensor& c0 = ctx->input(1);
    const Tensor& cs = ctx->input(2);
    const Tensor& gates = ctx->input(3);
    const Tensor& d_hs = ctx->input(4);
    const Tensor& d_h_last = ctx->input(5);
    const Tensor& d_c_last = ctx->input(6);
    OP_REQUIRES(ctx, cs.dims() == 3 && gates.dims() == 3 && kernel.dims() == 2,
                InvalidArgument("RnnzooLstmSequenceGrad: bad ranks"));
    const Index T = cs.dim_size(0), B = cs.dim_size(1), H = cs.dim_size(2);
    OP_REQUIRES(ctx, gates.dim_size(2) == 4 * H && d_hs.shape() == cs.shape() &&
                         c0.dim_size(0) == B && d_h_last.shape() == c0.shape() &&
                         d_c_last.shape() == c0.shape() && kernel.dim_size(1) == 4 * H,
                InvalidArgument("RnnzooLstmSequenceGrad: inconsistent shapes"));
    Tensor *d_projected, *d_h0, *d_c0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, gates.shape(), &d_projected));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c0.shape(), &d_h0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, c0.shape(), &d_c0));
    Tensor kernel_t, tanh_c_t, d_h_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DT_FLOAT, TensorShape({4 * H, H}),
                                           &kernel_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DT_FLOAT, TensorShape({B, H}),
                                           &tanh_c_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DT_FLOAT, TensorShape({B, H}),
                                           &d_h_t));
    const auto& d = ctx->eigen_cpu_device();
    UConstMatrix w(kernel.flat<float>().data(), H, 4 * H);
    UMatrix w_t(kernel_t.flat<float>().data(), 4 * H, H);
    w_t.device(d) = w.shuffle(Eigen::array<int, 2>{1, 0});  // W_h^T, once per sequence
    UMatrix tanh_c(tanh_c_t.flat<float>().data(), B, H);
    UMatrix d_h(d_h_t.flat<float>().data(), B, H);
    // The carried gradients: dH reaching H_{t} from step t+1 (in d_h0) and dC (in d_c0).
    UMatrix d_h_rec(d_h0->flat<float>().data(), B, H);
    UMatrix d_c(d_c0->flat<float>().data(), B, H);
    d_h_rec.device(d) = UConstMatrix(d_h_last.flat<float>().data(), B, H);
    d_c.device(d) = UConstMatrix(d_c_last.flat<float>().data(), B, H);
    for (Index t = T - 1; t >= 0; --t) {
      UConstMatrix g(gates.flat<float>().data() + t * B * 4 * H, B, 4 * H);
      UConstMatrix c(cs.flat<float>().data() + t * B * H, B, H);
      UConstMatrix c_prev(t ? cs.flat<float>().data() + (t - 1) * B * H
                            : c0.flat<float>().data(), B, H);
      UConstMatrix d_out(d_hs.flat<float>().data() + t * B * H, B, H);
      UMatrix dz(d_projected->flat<float>().data() + t * B * 4 * H, B, 4 * H);
      auto i = Block(g, B, H, 0);
      auto f = Block(g, B, H, 1);
      auto gg = Block(g, B, H, 2);
      auto o = Block(g, B, H, 3);
      const float one = 1.0f;
      tanh_c.device(d) = c.tanh();
      d_h.device(d) = d_out + d_h_rec;
      d_c.device(d) = d_c + d_h * o * (tanh_c * tanh_c * -one + one);
      Block(dz, B, H, 0).device(d) = d_c * gg * i * (i * -one + one);
      Block(dz, B, H, 1).device(d) = d_c * c_prev * f * (f * -one + one);
      Block(dz, B, H, 2).device(d) = d_c * i * (gg * gg * -one + one);
      Block(dz, B, H, 3).device(d) = d_h * tanh_c * o * (o * -one + one);
      d_h_rec.device(d) = UConstMatrix(dz.data(), B, 4 * H).contract(
          UConstMatrix(kernel_t.flat<float>().data(), 4 * H, H), kMatMul);
      d_c.device(d) = d_c * f;
    }
  }
};

REGISTER_KERNEL_BUILDER(Name("RnnzooLstmSequence").Device(::tensorflow::DEVICE_CPU),
                        LstmSequenceOp);
REGISTER_KERNEL_BUILDER(Name("RnnzooLstmSequenceGrad").Device(::tensorflow::DEVICE_CPU),
                        LstmSequenceGradOp);

}  // namespace rnnzoo

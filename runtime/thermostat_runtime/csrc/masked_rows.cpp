// The fused decode-row product of thermostat_runtime.fused: for each row r,
//   out[r] = sum over channels i with mask[r, i] of x[r, i] * wt[i, :]
// each row on its own, its kept channels in increasing order, one multiply-add per element: the
// arithmetic of embedding_bag(mode="sum", per_sample_weights) over the row's kept channels, in one pass
// (no nonzero, no gather copy). fused.py checks the bits against embedding_bag before using it.
#include <torch/extension.h>

#include <vector>

std::vector<torch::Tensor> masked_rows(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& wt) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.is_contiguous() && x.dim() == 2,
              "x must be a contiguous 2-D float32 CPU tensor");
  TORCH_CHECK(mask.scalar_type() == torch::kBool && mask.is_contiguous() && mask.sizes() == x.sizes(),
              "mask must be a contiguous bool tensor shaped like x");
  TORCH_CHECK(wt.scalar_type() == torch::kFloat && wt.is_contiguous() && wt.dim() == 2 && wt.size(0) == x.size(1),
              "wt must be a contiguous float32 [in, out] tensor");
  const int64_t n = x.size(0), in = x.size(1), out_dim = wt.size(1);
  auto out = torch::zeros({n, out_dim}, x.options());
  auto counts = torch::empty({n}, torch::dtype(torch::kLong));
  const float* xp = x.data_ptr<float>();
  const bool* mp = mask.data_ptr<bool>();
  const float* wp = wt.data_ptr<float>();
  float* op = out.data_ptr<float>();
  int64_t* cp = counts.data_ptr<int64_t>();
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = xp + r * in;
    const bool* mr = mp + r * in;
    float* __restrict o = op + r * out_dim;
    int64_t used = 0;
    for (int64_t i = 0; i < in; ++i) {
      if (!mr[i]) continue;
      const float v = xr[i];
      const float* __restrict w = wp + i * out_dim;
      for (int64_t j = 0; j < out_dim; ++j) o[j] += v * w[j];
      ++used;
    }
    cp[r] = used;
  }
  return {out, counts};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("masked_rows", &masked_rows); }

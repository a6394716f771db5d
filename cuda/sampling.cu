// Batched token sampling on the GPU, the same algorithm and random numbers as the CPU
// vireo::Sampler (src/sampling/sampler.cpp), minus the history penalties.
//
// 1. cub::DeviceSegmentedRadixSort sorts each row's (logit, id) pairs in descending order;
//    radix sort is stable, so equal logits keep the lower id first (the CPU tie rule).
// 2. One CTA per row: greedy rows take the first id and log-softmax it. Sampled rows compute
//    s_i = (l_i - l_max) / T and w_i = exp(s_i) over the sorted order, cut to top-k, and
//    write the inclusive prefix sums of w (cub::BlockScan, fp32) to a workspace; thread 0
//    then binary-searches the monotone prefix sums for top-p (first prefix with mass >=
//    top_p * Z), min-p (first w_i < min_p, w being non-increasing) and the inverse-CDF draw
//    (first prefix sum > u * Z_kept with u = philox_uniform01(seed, counter)).
// Only ids and log-probs are copied back to the host.
#include <cub/cub.cuh>

#include <cmath>
#include <cstring>
#include <string>

#include "common.cuh"
#include "cuda_api.hpp"
#include "sampling/philox.hpp"
#include "vireo/error.hpp"

namespace vireo::cuda {
namespace {

constexpr int SAMPLE_THREADS = 256;

__global__ void init_sort_kernel(std::int32_t* vals, std::int32_t* offsets, int rows, int vocab) {
  const std::size_t n = std::size_t(rows) * vocab;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    vals[i] = std::int32_t(i % vocab);
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r <= rows) offsets[r] = r * vocab;
}

__device__ __forceinline__ int first_index(const float* a, int lo, int hi, float x, bool strictly_greater) {
  // first i in [lo, hi) with a[i] > x (or >= x); hi when none. a is non-decreasing.
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    const bool ok = strictly_greater ? a[mid] > x : a[mid] >= x;
    if (ok) hi = mid; else lo = mid + 1;
  }
  return lo;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
    select_kernel(const float* __restrict__ sorted_logits, const std::int32_t* __restrict__ sorted_ids,
                  const RowSampling* __restrict__ params, float* __restrict__ cum_ws, int vocab,
                  std::int32_t* __restrict__ out_tok, float* __restrict__ out_lp) {
  using Scan = cub::BlockScan<float, SAMPLE_THREADS>;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ float carry;
  const int r = blockIdx.x;
  const float* sk = sorted_logits + std::size_t(r) * vocab;
  const std::int32_t* si = sorted_ids + std::size_t(r) * vocab;
  float* cum = cum_ws + std::size_t(r) * vocab;
  const RowSampling prm = params[r];
  const float lmax = sk[0];
  // Nothing to draw (all -inf), or a NaN / +inf logit (sorted first; the CPU Sampler rejects
  // both, and +inf would turn every s_i into NaN): sample() reports it.
  if (lmax == -INFINITY || lmax == INFINITY || lmax != lmax) {
    if (threadIdx.x == 0) out_tok[r] = -1, out_lp[r] = NAN;
    return;
  }

  if (prm.temperature <= 0.0f) {
    float z = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) z += expf(sk[i] - lmax);
    z = block_sum(z);
    if (threadIdx.x == 0) {
      out_tok[r] = si[0];
      out_lp[r] = -logf(z);
    }
    return;
  }

  // Candidates: finite logits, a sorted prefix; top-k shortens it.
  // sk is non-increasing; the -inf tail starts at the first i with sk[i] == -inf.
  int count = 0;
  {
    int hi = vocab;
    while (count < hi) {
      const int mid = (count + hi) / 2;
      if (sk[mid] == -INFINITY) hi = mid; else count = mid + 1;
    }
  }
  const int K = prm.top_k > 0 && prm.top_k < count ? prm.top_k : count;
  const float temp = prm.temperature;

  if (threadIdx.x == 0) carry = 0.0f;
  __syncthreads();
  for (int base = 0; base < K; base += SAMPLE_THREADS) {
    const int i = base + threadIdx.x;
    const float w = i < K ? expf((sk[i] - lmax) / temp) : 0.0f;
    float incl;
    Scan(scan_tmp).InclusiveSum(w, incl);
    const float c0 = carry;
    if (i < K) cum[i] = c0 + incl;
    __syncthreads();  // everyone has read carry
    if (threadIdx.x == SAMPLE_THREADS - 1) carry = c0 + incl;
    __syncthreads();
  }
  if (threadIdx.x != 0) return;
  __threadfence_block();

  const float Z = cum[K - 1];
  int kept = K;
  if (prm.top_p < 1.0f) kept = min(kept, first_index(cum, 0, K, prm.top_p * Z, false) + 1);
  if (prm.min_p > 0.0f) {
    // first i >= 1 with w_i < min_p; w is non-increasing along the sorted order.
    int lo = 1, hi = kept;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (expf((sk[mid] - lmax) / temp) < prm.min_p) hi = mid; else lo = mid + 1;
    }
    kept = lo;
  }
  const float z_kept = cum[kept - 1];
  const float u = vireo::detail::philox_uniform01(prm.seed, prm.counter);
  int pick = first_index(cum, 0, kept, u * z_kept, true);
  if (pick >= kept) {
    pick = kept - 1;  // rounding: take the last token with a positive weight
    while (pick > 0 && cum[pick] == cum[pick - 1]) --pick;
  }
  out_tok[r] = si[pick];
  out_lp[r] = (sk[pick] - lmax) / temp - logf(z_kept);
}

}  // namespace

GpuSampler::GpuSampler(int max_rows, int vocab, void* stream) : max_rows_(max_rows), vocab_(vocab), stream_(stream) {
  if (max_rows <= 0 || vocab <= 0)
    throw Error(ErrorCode::InvalidArgument,
                "GpuSampler max_rows = " + std::to_string(max_rows) + ", vocab = " + std::to_string(vocab));
  const std::size_t n = std::size_t(max_rows) * vocab;
  // CUB's segment offsets (and init_sort_kernel's r * vocab) are int32.
  if (n > std::size_t(INT32_MAX))
    throw Error(ErrorCode::InvalidArgument, "GpuSampler max_rows = " + std::to_string(max_rows) + " x vocab = " +
                                                std::to_string(vocab) + " exceeds the int32 offsets of the sort");
  keys_ = DeviceBuffer(n * sizeof(float));
  vals_in_ = DeviceBuffer(n * sizeof(std::int32_t));
  vals_out_ = DeviceBuffer(n * sizeof(std::int32_t));
  cum_ = DeviceBuffer(n * sizeof(float));
  offsets_ = DeviceBuffer((std::size_t(max_rows) + 1) * sizeof(std::int32_t));
  params_ = DeviceBuffer(std::size_t(max_rows) * sizeof(RowSampling));
  out_tok_ = DeviceBuffer(std::size_t(max_rows) * sizeof(std::int32_t));
  out_lp_ = DeviceBuffer(std::size_t(max_rows) * sizeof(float));
  host_params_ = PinnedBuffer(std::size_t(max_rows) * sizeof(RowSampling));
  host_out_ = PinnedBuffer(std::size_t(max_rows) * (sizeof(std::int32_t) + sizeof(float)));
  auto s = static_cast<cudaStream_t>(stream);
  check(cub::DeviceSegmentedRadixSort::SortPairsDescending(
            nullptr, temp_bytes_, keys_.as<float>(), keys_.as<float>(), vals_in_.as<std::int32_t>(),
            vals_out_.as<std::int32_t>(), std::int64_t(n), max_rows, offsets_.as<std::int32_t>(),
            offsets_.as<std::int32_t>() + 1, 0, 32, s),
        "cub SortPairsDescending (size query)");
  temp_ = DeviceBuffer(temp_bytes_ ? temp_bytes_ : 1);
  const int blocks = int(std::min<std::size_t>((n + 255) / 256, 65535));
  init_sort_kernel<<<std::max(blocks, (max_rows + 256) / 256), 256, 0, s>>>(vals_in_.as<std::int32_t>(),
                                                                           offsets_.as<std::int32_t>(), max_rows, vocab);
  check(cudaGetLastError(), "init_sort_kernel");
  check(cudaStreamSynchronize(s), "GpuSampler init");
}

GpuSampler::~GpuSampler() = default;

void GpuSampler::sample(const float* logits, int rows, const RowSampling* params, std::int32_t* tokens, float* logprobs) {
  if (rows < 0 || rows > max_rows_)
    throw Error(ErrorCode::InvalidArgument,
                "GpuSampler: " + std::to_string(rows) + " rows, at most " + std::to_string(max_rows_));
  for (int r = 0; r < rows; ++r) {
    const RowSampling& p = params[r];
    if (std::isnan(p.temperature) || !(p.top_p > 0.0f && p.top_p <= 1.0f) || !(p.min_p >= 0.0f && p.min_p <= 1.0f) ||
        p.top_k < 0)
      throw Error(ErrorCode::InvalidArgument,
                  "GpuSampler row " + std::to_string(r) + ": temperature " + std::to_string(p.temperature) +
                      ", top_k " + std::to_string(p.top_k) + ", top_p " + std::to_string(p.top_p) + ", min_p " +
                      std::to_string(p.min_p));
  }
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream_);
  std::memcpy(host_params_.get(), params, std::size_t(rows) * sizeof(RowSampling));
  check(cudaMemcpyAsync(params_.get(), host_params_.get(), std::size_t(rows) * sizeof(RowSampling),
                        cudaMemcpyHostToDevice, s),
        "GpuSampler params upload");
  std::size_t temp_bytes = temp_bytes_;
  check(cub::DeviceSegmentedRadixSort::SortPairsDescending(
            temp_.get(), temp_bytes, logits, keys_.as<float>(), vals_in_.as<std::int32_t>(), vals_out_.as<std::int32_t>(),
            std::int64_t(rows) * vocab_, rows, offsets_.as<std::int32_t>(), offsets_.as<std::int32_t>() + 1, 0, 32, s),
        "cub SortPairsDescending");
  select_kernel<<<rows, SAMPLE_THREADS, 0, s>>>(keys_.as<float>(), vals_out_.as<std::int32_t>(), params_.as<RowSampling>(),
                                                cum_.as<float>(), vocab_, out_tok_.as<std::int32_t>(), out_lp_.as<float>());
  check(cudaGetLastError(), "sampling select_kernel");
  auto* ht = static_cast<std::int32_t*>(host_out_.get());
  auto* hl = reinterpret_cast<float*>(ht + max_rows_);
  check(cudaMemcpyAsync(ht, out_tok_.get(), std::size_t(rows) * 4, cudaMemcpyDeviceToHost, s), "GpuSampler D2H");
  check(cudaMemcpyAsync(hl, out_lp_.get(), std::size_t(rows) * 4, cudaMemcpyDeviceToHost, s), "GpuSampler D2H");
  check(cudaStreamSynchronize(s), "GpuSampler sync");
  for (int r = 0; r < rows; ++r)
    if (ht[r] < 0)
      throw Error(ErrorCode::InvalidArgument,
                  "GpuSampler row " + std::to_string(r) + ": every logit is -inf, or a logit is NaN or +inf");
  std::memcpy(tokens, ht, std::size_t(rows) * 4);
  std::memcpy(logprobs, hl, std::size_t(rows) * 4);
}

}  // namespace vireo::cuda

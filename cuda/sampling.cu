// Batched token sampling on the GPU, the same algorithm and random numbers as the CPU
// vireo::Sampler (src/sampling/sampler.cpp), minus the history penalties.
//
// Greedy rows (temperature <= 0) never sort: greedy_kernel, one CTA of 1024 threads per row,
// streams the row once with 16-byte loads and keeps per thread an online (max, argmax,
// sum of exp(l - max)) triple -- a new max rescales the running sum -- then merges the
// triples over the block. Ties go to the lower id (strict > along each thread's increasing
// ids, the lower id on equal maxima when merging), as in the CPU Sampler; the log-prob is
// -log(sum_i exp(l_i - l_max)). A row with a NaN or +inf logit, or only -inf, reports -1.
// Sampled rows:
// 1. cub::DeviceSegmentedRadixSort sorts each sampled row's (logit, id) pairs in descending
//    order; radix sort is stable, so equal logits keep the lower id first (the CPU tie
//    rule). A greedy row's segment is given as empty (end = begin), so it costs nothing.
// 2. select_kernel, one CTA per sampled row: s_i = (l_i - l_max) / T and w_i = exp(s_i)
//    over the sorted order, cut to top-k, and the inclusive prefix sums of w (cub::BlockScan,
//    fp32) go to a workspace; thread 0 then binary-searches the monotone prefix sums for
//    top-p (first prefix with mass >= top_p * Z), min-p (first w_i < min_p, w being
//    non-increasing) and the inverse-CDF draw (first prefix sum > u * Z_kept with
//    u = philox_uniform01(seed, counter)).
// A call whose rows are all greedy launches greedy_kernel only; one with no greedy row,
// the sort and select_kernel only. Only ids and log-probs are copied back to the host.
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

// ---- greedy rows ---------------------------------------------------------------------------

constexpr int GREEDY_THREADS = 1024;
constexpr int GREEDY_UNROLL = 4;  // 16-byte loads in flight per thread: 64 KiB per CTA
constexpr float LOG2E = 1.4426950408889634f;

/// Running (max m, its id, sum of exp(l - m)) of one thread, plus whether a NaN / +inf
/// was seen. Starts empty: m = -inf, id = INT32_MAX (never a token), s = 0.
struct GreedyState {
  float m = -INFINITY;
  float s = 0.0f;
  int id = INT32_MAX;
  bool bad = false;
};

/// exp(x) for x <= 0 (or -inf): ex2 of x * log2(e). The difference is taken before scaling
/// so that huge finite logits (|l| > FLT_MAX / log2(e)) cannot overflow the product; a
/// difference that overflows is -inf and its term 0, as on the CPU.
__device__ __forceinline__ float exp_nonpos(float x) { return exp2f(x * LOG2E); }

/// Fold logit v of token i in. A thread pushes its ids in increasing order, so the strict
/// > keeps the lowest id of equal maxima. A new max rescales s by exp(m_old - v) (0 when
/// m_old = -inf, s being 0 then); -inf terms add nothing (and would give exp(NaN) while
/// m = -inf). NaN fails every comparison and is only flagged.
__device__ __forceinline__ void greedy_push(GreedyState& st, float v, int i) {
  st.bad |= !(v < INFINITY);
  if (v > st.m) {
    st.s *= exp_nonpos(st.m - v);
    st.m = v;
    st.id = i;
  }
  if (v > -INFINITY) st.s += exp_nonpos(v - st.m);
}

/// Merge (m2, s2, id2) into st: the larger max wins, the lower id on equal maxima; the sums
/// are brought to the common max (both are 0 when it is -inf).
__device__ __forceinline__ void greedy_merge(GreedyState& st, float m2, float s2, int id2) {
  const float M = fmaxf(st.m, m2);
  if (M == -INFINITY) return;  // both empty
  st.s = st.s * exp_nonpos(st.m - M) + s2 * exp_nonpos(m2 - M);
  if (m2 > st.m || (m2 == st.m && id2 < st.id)) st.id = id2;
  st.m = M;
}

/// Merge the (m, s, id) triples of the 32 lanes of a warp; every lane ends with the result.
__device__ __forceinline__ void greedy_warp_merge(GreedyState& st) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, st.m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, st.s, o);
    const int id2 = __shfl_xor_sync(0xffffffffu, st.id, o);
    greedy_merge(st, m2, s2, id2);
  }
}

__device__ __forceinline__ void greedy_push4(GreedyState& st, float4 v, int i) {
  greedy_push(st, v.x, i);
  greedy_push(st, v.y, i + 1);
  greedy_push(st, v.z, i + 2);
  greedy_push(st, v.w, i + 3);
}

/// One CTA per row r < rows with params[r].temperature <= 0 (other rows return at once;
/// params null: every row is greedy):
/// out_tok[r] = argmax_i logits[r, i] (lowest id on ties), out_lp[r] = log softmax of it;
/// -1 / NaN for a row with a NaN or +inf logit or no finite one. logits fp32 [rows, vocab],
/// any 4-byte alignment: the first `head` < 4 elements of a row are read one by one up to
/// the 16-byte boundary, then float4 loads, then the < 4 element tail.
__global__ void __launch_bounds__(GREEDY_THREADS)
    greedy_kernel(const float* __restrict__ logits, const RowSampling* __restrict__ params, int vocab,
                  std::int32_t* __restrict__ out_tok, float* __restrict__ out_lp) {
  const int r = blockIdx.x;
  if (params && !(params[r].temperature <= 0.0f)) return;  // a sampled row: select_kernel's
  const float* row = logits + std::size_t(r) * vocab;
  const int head = min(int(((16u - (reinterpret_cast<std::uintptr_t>(row) & 15u)) & 15u) >> 2), vocab);
  const int nvec = (vocab - head) >> 2;
  const float4* vrow = reinterpret_cast<const float4*>(row + head);
  const int t = threadIdx.x;

  // Each thread's ids increase along: its head element, vectors t, t + NT, ..., its tail.
  GreedyState st;
  if (t < head) greedy_push(st, row[t], t);
  int j = t;
  for (; j + (GREEDY_UNROLL - 1) * GREEDY_THREADS < nvec; j += GREEDY_UNROLL * GREEDY_THREADS) {
    float4 v[GREEDY_UNROLL];
#pragma unroll
    for (int u = 0; u < GREEDY_UNROLL; ++u) v[u] = __ldcs(vrow + j + u * GREEDY_THREADS);  // read once
#pragma unroll
    for (int u = 0; u < GREEDY_UNROLL; ++u) greedy_push4(st, v[u], head + 4 * (j + u * GREEDY_THREADS));
  }
  for (; j < nvec; j += GREEDY_THREADS) greedy_push4(st, __ldcs(vrow + j), head + 4 * j);
  const int tail = head + 4 * nvec;
  if (tail + t < vocab) greedy_push(st, row[tail + t], tail + t);

  // Warp, then block merge of the (m, s, id) triples.
  greedy_warp_merge(st);
  __shared__ float sm[GREEDY_THREADS / 32], ss[GREEDY_THREADS / 32];
  __shared__ int sid[GREEDY_THREADS / 32];
  const int lane = t & 31, warp = t >> 5;
  if (lane == 0) sm[warp] = st.m, ss[warp] = st.s, sid[warp] = st.id;
  const bool bad = __syncthreads_or(st.bad);  // also the barrier for sm / ss / sid
  if (warp != 0) return;
  GreedyState w;
  if (lane < GREEDY_THREADS / 32) {
    w.m = sm[lane];
    w.s = ss[lane];
    w.id = sid[lane];
  }
  greedy_warp_merge(w);
  if (lane == 0) {
    const bool none = bad || w.id == INT32_MAX;
    out_tok[r] = none ? -1 : w.id;
    out_lp[r] = none ? NAN : -logf(w.s);
  }
}

// ---- sampled rows ---------------------------------------------------------------------------

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
  const RowSampling prm = params[r];
  if (prm.temperature <= 0.0f) return;  // greedy_kernel's row (its segment was not sorted)
  const float* sk = sorted_logits + std::size_t(r) * vocab;
  const std::int32_t* si = sorted_ids + std::size_t(r) * vocab;
  float* cum = cum_ws + std::size_t(r) * vocab;
  const float lmax = sk[0];
  const float lmin = sk[vocab - 1];
  // Nothing to draw (all -inf), or a NaN / +inf logit (the CPU Sampler rejects both, and
  // +inf would turn every s_i into NaN): sample() reports it. The radix sort orders floats
  // by their sign-flipped bits, so +inf and a positive NaN come first, a negative NaN last.
  if (lmax == -INFINITY || lmax == INFINITY || lmax != lmax || lmin != lmin) {
    if (threadIdx.x == 0) out_tok[r] = -1, out_lp[r] = NAN;
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
  // params_ / host_params_: a call's rows RowSamplings, then its rows int32 segment ends.
  params_ = DeviceBuffer(std::size_t(max_rows) * (sizeof(RowSampling) + sizeof(std::int32_t)));
  // Token ids [max_rows], then log-probs [max_rows]: one download brings back both.
  out_ = DeviceBuffer(std::size_t(max_rows) * (sizeof(std::int32_t) + sizeof(float)));
  host_params_ = PinnedBuffer(std::size_t(max_rows) * (sizeof(RowSampling) + sizeof(std::int32_t)));
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
  // One upload: the rows' parameters, then the end offset of each row's sort segment (the
  // begin offsets r * vocab are fixed in offsets_): a greedy row's segment is empty.
  bool any_greedy = false, any_sampled = false;
  auto* hp = static_cast<unsigned char*>(host_params_.get());
  std::memcpy(hp, params, std::size_t(rows) * sizeof(RowSampling));
  auto* ends = reinterpret_cast<std::int32_t*>(hp + std::size_t(rows) * sizeof(RowSampling));
  for (int r = 0; r < rows; ++r) {
    const bool greedy = params[r].temperature <= 0.0f;
    any_greedy |= greedy;
    any_sampled |= !greedy;
    ends[r] = (greedy ? r : r + 1) * vocab_;  // fits: max_rows * vocab <= INT32_MAX
  }
  // All-greedy calls (every greedy decode step) upload nothing: greedy_kernel then takes
  // every row, and no other kernel reads the parameters.
  if (any_sampled)
    check(cudaMemcpyAsync(params_.get(), hp, std::size_t(rows) * (sizeof(RowSampling) + sizeof(std::int32_t)),
                          cudaMemcpyHostToDevice, s),
          "GpuSampler params upload");
  const auto* d_params = params_.as<RowSampling>();
  auto* out_tok = out_.as<std::int32_t>();
  auto* out_lp = reinterpret_cast<float*>(out_tok + max_rows_);
  const auto* d_ends = reinterpret_cast<const std::int32_t*>(params_.as<unsigned char>() + std::size_t(rows) * sizeof(RowSampling));
  if (any_greedy) {
    greedy_kernel<<<rows, GREEDY_THREADS, 0, s>>>(logits, any_sampled ? d_params : nullptr, vocab_, out_tok, out_lp);
    check(cudaGetLastError(), "sampling greedy_kernel");
  }
  if (any_sampled) {
    std::size_t temp_bytes = temp_bytes_;
    check(cub::DeviceSegmentedRadixSort::SortPairsDescending(
              temp_.get(), temp_bytes, logits, keys_.as<float>(), vals_in_.as<std::int32_t>(),
              vals_out_.as<std::int32_t>(), std::int64_t(rows) * vocab_, rows, offsets_.as<std::int32_t>(), d_ends, 0,
              32, s),
          "cub SortPairsDescending");
    select_kernel<<<rows, SAMPLE_THREADS, 0, s>>>(keys_.as<float>(), vals_out_.as<std::int32_t>(), d_params,
                                                  cum_.as<float>(), vocab_, out_tok, out_lp);
    check(cudaGetLastError(), "sampling select_kernel");
  }
  auto* ht = static_cast<std::int32_t*>(host_out_.get());
  auto* hl = reinterpret_cast<float*>(ht + max_rows_);
  // One copy from the first token id to the last log-prob (the layouts match).
  check(cudaMemcpyAsync(ht, out_.get(), (std::size_t(max_rows_) + std::size_t(rows)) * 4, cudaMemcpyDeviceToHost, s),
        "GpuSampler D2H");
  check(cudaStreamSynchronize(s), "GpuSampler sync");
  for (int r = 0; r < rows; ++r)
    if (ht[r] < 0)
      throw Error(ErrorCode::InvalidArgument,
                  "GpuSampler row " + std::to_string(r) + ": every logit is -inf, or a logit is NaN or +inf");
  std::memcpy(tokens, ht, std::size_t(rows) * 4);
  std::memcpy(logprobs, hl, std::size_t(rows) * 4);
}

}  // namespace vireo::cuda

// Host-callable interface of the CUDA backend's kernels, for the backend, the tests and the
// benchmarks. Parses with any C++20 compiler: no CUDA header is included, a stream crosses
// as `void*` (a cudaStream_t), and each launcher returns the cudaError_t of its launch as an
// int (0 = cudaSuccess) -- launchers never throw, print or exit. The RAII helpers below
// (DeviceBuffer, Stream, Blas, GpuSampler, Event) throw vireo::Error(ErrorCode::Cuda) with
// the CUDA error text.
//
// Shapes are row-major. "T" below is the activation/weight element type named by a DType
// (F32, F16 or BF16); accumulation is always fp32. The paged KV cache of one layer is
// [num_blocks * block_size slots, n_kv_heads, head_dim] in T; token t of a sequence lives at
// slot block_ids[bt_off + t / block_size] * block_size + t % block_size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "vireo/types.hpp"

namespace vireo::cuda {

/// A cudaError_t value (0 = success).
using Status = int;

/// Throw Error(Cuda, "<what>: <CUDA error name and text>") when status != 0.
void check(Status status, const char* what);
/// Number of usable devices, 0 when there is no driver or GPU (reason says why).
int device_count(std::string* reason) noexcept;
/// True when a device is present: [cuda] tests skip themselves otherwise.
bool available() noexcept;
/// Why device `index` cannot run this build's kernels, or "" when it can: compute capability
/// below 8.0 (the kernels use cp.async and bf16 mma.sync), no kernel image for its
/// architecture in this build (the message names the architectures it was built for), or a
/// device that fails to initialise. Makes `index` the current device.
std::string device_unusable(int index);
/// cudaFuncGetAttributes of an empty kernel on the current device: 0, or the error (no
/// kernel image for the device) every launch would meet.
Status kernel_image_status() noexcept;
void synchronize(void* stream);
/// Device-to-device copy of `bytes` on `stream` (asynchronous).
Status copy_device(void* dst, const void* src, std::size_t bytes, void* stream) noexcept;
/// Last asynchronous error (cudaGetLastError), for tests.
Status last_error() noexcept;
/// The current device has compute capability >= 9.0 (PDL, thread-block clusters).
bool hopper_or_later() noexcept;
/// Whether kernels of this backend launch with programmatic dependent launch on the current
/// device (compute capability >= 9.0, and VIREO_PDL is not 0: docs/TUNING.md).
bool pdl_enabled() noexcept;
/// Diagnostic: launch a 50 us one-CTA kernel and a dependent one with the PDL attribute
/// (eagerly, or captured in a CUDA graph and replayed). early_us: how long before the first
/// kernel ended the second one started (> 0: the launches overlapped); after_wait_us: when its
/// griddepcontrol.wait returned, relative to the first kernel's end.
Status pdl_probe(bool graph, double* early_us, double* after_wait_us) noexcept;

/// Host-side float <-> bf16 / fp16 bits (round to nearest even).
std::uint16_t float_to_bf16(float f) noexcept;
float bf16_to_float(std::uint16_t h) noexcept;
std::uint16_t float_to_half(float f) noexcept;
float half_to_float(std::uint16_t h) noexcept;
/// Convert n floats to `dt` elements (dst holds n * dtype_size(dt) bytes) and back.
void convert_from_f32(DType dt, const float* src, void* dst, std::size_t n) noexcept;
void convert_to_f32(DType dt, const void* src, float* dst, std::size_t n) noexcept;

/// DeviceBuffer and PinnedBuffer allocations made so far in this process (tests check that a
/// decode step allocates nothing: every buffer is made at load or cache creation).
std::uint64_t allocation_count() noexcept;
/// Free memory of the current device in bytes (cudaMemGetInfo); throws Error on failure.
std::size_t device_free_bytes();

/// Device memory, freed on destruction. Synchronous copies (the default stream).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();
  void* get() const noexcept { return ptr_; }
  template <typename U>
  U* as() const noexcept { return static_cast<U*>(ptr_); }
  std::size_t size() const noexcept { return bytes_; }
  void upload(const void* host, std::size_t bytes, std::size_t offset = 0);
  void download(void* host, std::size_t bytes, std::size_t offset = 0) const;
  /// Fill every byte with `value` (0xFF poisons floats/bf16/fp16 with NaN).
  void fill_bytes(int value);

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

/// Pinned host memory.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t bytes);
  PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer();
  void* get() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

/// cudaStreamLegacy (the legacy default stream) as a void*, for callers without CUDA headers.
void* legacy_stream() noexcept;

/// A non-blocking CUDA stream of its own, or (Stream(external)) a caller's stream that it
/// uses but never destroys.
class Stream {
 public:
  Stream();
  explicit Stream(void* external) noexcept : s_(external), owned_(false) {}
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  void* get() const noexcept { return s_; }
  void synchronize() const;
  /// Whether work on this stream can be captured into a CUDA graph (not the legacy or the
  /// per-thread default stream).
  bool capturable() const noexcept;

 private:
  void* s_ = nullptr;
  bool owned_ = true;
};

/// A CUDA event pair for device timing (benchmarks).
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start(void* stream);
  /// Record the stop event, wait for it, return milliseconds since start().
  float stop(void* stream);

 private:
  void* a_ = nullptr;
  void* b_ = nullptr;
};

/// cuBLAS handle bound to a stream, with a preallocated workspace (so that GEMMs can be
/// captured in a CUDA graph without allocating).
class Blas {
 public:
  explicit Blas(void* stream);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  /// y[T, N] = x[T, K] . W[N, K]^T (+ y when accumulate). x, W in `dt`; y in `dt`, or fp32 when
  /// y_f32. fp32 accumulation (CUBLAS_COMPUTE_32F, no TF32). Throws Error(Cuda).
  void gemm(DType dt, const void* x, const void* w, void* y, bool y_f32, int T, int N, int K,
            bool accumulate = false);

 private:
  void* handle_ = nullptr;
  void* stream_ = nullptr;
  DeviceBuffer workspace_;
};

// ---- kernel launchers ---------------------------------------------------------------------

/// Decode GEMV: y[n, rows] = x[n, cols] . W[rows, cols]^T, 1 <= n <= GEMV_MAX_TOKENS.
/// bf16/fp16 with cols % 8 == 0 and 16-byte aligned w, x: tensor-core GEMV (16 rows per CTA,
/// split-K over 8 warps, see gemv.cu); fp32: one warp per row with 16-byte loads; a scalar
/// path otherwise. y is T, or fp32 when y_f32.
inline constexpr int GEMV_MAX_TOKENS = 8;
Status gemv(DType dt, const void* w, const void* x, void* y, bool y_f32, int n, int rows, int cols,
            void* stream);

/// Decode FFN input half, fused: h[t, i] = silu(g) * u with g = x[t] . w_gu[i], u = x[t] . w_gu[ff + i]
/// for t < n (1 <= n <= GEMV_MAX_TOKENS), i < ff. w_gu [2 ff, cols] (gate rows, then up rows),
/// x [n, cols], h [n, ff], all in T. g and u are rounded to T before the SwiGLU, as when gemv
/// writes them to a T buffer and swiglu reads it, so both paths give the same h up to the
/// fp32 summation order.
Status gemv_swiglu(DType dt, const void* w_gu, const void* x, void* h, int n, int ff, int cols, void* stream);

/// Token embedding: resid[t, d] = float(table[tokens[t], :]) for t < n. table [vocab, d] in T.
Status embed(DType dt, const void* table, const std::int32_t* tokens, float* resid, int n, int d,
             void* stream);

/// Fused residual add + RMSNorm. For output row r (r < rows) and source row i = row_idx ?
/// row_idx[r] : r: h = resid[i] + (delta ? delta[i] : 0); if (!row_idx && delta) resid[i] = h;
/// y[r] = h * rsqrt(mean(h^2) + eps) * w. resid fp32 [*, cols]; delta, y in T; w fp32 [cols].
Status rmsnorm(DType dt, const void* delta, float* resid, const float* w, void* y,
               const std::int32_t* row_idx, int rows, int cols, float eps, void* stream);

/// SwiGLU: out[r, i] = silu(gu[r, i]) * gu[r, ff + i]; gu [rows, 2*ff], out [rows, ff], in T.
Status swiglu(DType dt, const void* gu, void* out, int rows, int ff, void* stream);

/// Bias + RoPE + KV write. qkv [n, (nh + 2*nkv) * hd] in T (q heads, then k heads, then v);
/// bias fp32 [(nh + 2*nkv) * hd] or null; inv_freq fp32 [hd/2] (theta^(-2i/hd) / freq_factor).
/// q_out [n, nh, hd] gets roped q; K (roped) and V go to k_cache/v_cache at slots[t]
/// (a negative slot skips the write: padding tokens of a CUDA graph bucket).
struct RopeKVParams {
  const void* qkv = nullptr;
  const float* bias = nullptr;
  const float* inv_freq = nullptr;
  void* q_out = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  const std::int32_t* positions = nullptr;
  const std::int64_t* slots = nullptr;
  int n = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  /// int8 K/V (KVPrecision::Int8) when set: k_cache / v_cache are int8 [slots, nkv, hd] and
  /// each roped K row / V row of a KV head is quantized on its own as the CPU reference does
  /// (cpu::quantize_kv_row: scale max|x| / 127, round to nearest even; NaN scale and zeros for
  /// a non-finite row), scales to k_scale / v_scale [slots, nkv]. head_dim 64 or 128.
  float* k_scale = nullptr;
  float* v_scale = nullptr;
};
Status rope_kv(DType dt, const RopeKVParams& p, void* stream);

/// Fused decode GEMVs (bf16 / fp16, 1 <= n <= GEMV_MAX_TOKENS): the tensor-core GEMV of
/// gemv() with
///  - norm: the input is not x but RMSNorm(ex.resid rows) * ex.norm_w, built per CTA in shared
///    memory (n * cols * sizeof(T) <= kGemvNormSmemBytes: n <= 8 at d = 4096), so no separate
///    RMSNorm kernel runs (not with the Add epilogue, which writes the residual);
///  - epilogue Store: y [n, rows] in T; Add: y is the fp32 residual [n, rows], y += T(result)
///    (rounded to T as the unfused path stores it; each element owned by one thread); SwiGLU: as gemv_swiglu (rows = ff, y = h);
///    RopeKV: rows = (nh + 2 nkv) hd, the result goes through rope_kv()'s arithmetic with
///    ex.rope (x and y unused there; ex.rope.qkv ignored).
/// cudaErrorNotSupported when gemv_fused_supported() is false or a pointer is misaligned.
/// 64 KiB (the launcher opts in above 48 KiB): with ~4.7 KiB of static shared memory, 3 CTAs
/// per SM still fit in an H100's 227 KiB.
inline constexpr std::size_t kGemvNormSmemBytes = 64 * 1024;
enum class GemvEpilogue { Store, Add, SwiGLU, RopeKV };
struct GemvExtras {
  const float* resid = nullptr;   ///< norm: fp32 rows [n, cols]
  const float* norm_w = nullptr;  ///< norm: fp32 [cols]
  float eps = 0.0f;
  RopeKVParams rope;  ///< RopeKV epilogue
  /// Weight chunks per warp pulled into L2 before the PDL wait; < 0: one (deeper prefetch for
  /// every GEMV measured slower; the fused Wo GEMV asks for its whole first-wave slice).
  int prefetch_chunks = -1;
  int prefetch_ctas = 1 << 30;  ///< set by the launcher: CTAs of the first wave (they prefetch)
  /// Add over 16-bit weights (the Wo / down GEMVs): weight chunks each warp has in flight
  /// before its MMAs, 1 or 2. 2 applies only to grids of <= 2 CTAs per SM (its occupancy).
  int depth = 1;
};
/// The prefetch depth (GemvExtras::prefetch_chunks) at which the first wave of a 16-bit
/// [rows, cols] Store / Add GEMV pulls all of its warps' chunks into L2 before its PDL wait,
/// as long as that stays within l2_bytes; at least 1.
int gemv_slice_prefetch_chunks(int rows, int cols, std::size_t l2_bytes) noexcept;
bool gemv_fused_supported(DType dt, int n, int cols, bool norm) noexcept;
Status gemv_fused(DType dt, GemvEpilogue epi, bool norm, const void* w, const void* x, void* y, int n, int rows,
                  int cols, const GemvExtras& ex, void* stream);

/// Paged attention for single query tokens (decode), split-KV (flash-decoding).
/// For each listed token t = tok_list[i] and each KV head, one CTA per split reads that head's
/// keys 0..kv_len[t]-1 once for the whole group of nh/nkv query heads; with splits > 1 the
/// partial (max, sum, acc) go to the workspace and a second kernel merges them.
/// q [T, nh, hd], out [T, nh, hd] (rows of unlisted tokens untouched), in T; head_dim 64 or 128,
/// group size nh/nkv <= 8. K/V in T, or int8 with row scales (AttentionParams::k_scale). Workspace: decode_attention_workspace_floats(n, nh, hd, splits)
/// floats, zero-filled once before the first call (its split counters are left at zero by
/// every call; with 16-bit types the last split of each head merges the others in-kernel).
struct AttentionParams {
  const void* q = nullptr;
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  void* out = nullptr;
  const std::int32_t* kv_len = nullptr;     ///< [T] keys visible to token t (= position + 1)
  const std::int32_t* bt_off = nullptr;     ///< [T] offset of t's block table in block_ids
  const std::int32_t* block_ids = nullptr;  ///< concatenated block tables
  int n_heads = 0, n_kv_heads = 0, head_dim = 0, block_size = 16;
  float scale = 0.0f;
  /// int8 K/V (KVPrecision::Int8) when set: k_cache / v_cache hold int8 [slots, nkv, hd] and
  /// these the fp32 row scales [slots, nkv] (element = q * scale). Both or neither.
  const float* k_scale = nullptr;
  const float* v_scale = nullptr;
  /// Decode, 16-bit K/V, 2..16 splits: the splits of each (token, KV head) run as one
  /// thread-block cluster and merge through distributed shared memory, with no workspace
  /// round trip. The backend sets it for steps of more than one decode token, where it
  /// measured faster on the H100; at batch 1 it measured slower (bench/results/README.md).
  bool cluster_merge = false;
};
std::size_t decode_attention_workspace_floats(int n, int n_heads, int head_dim, int splits) noexcept;
/// Splits that fill the GPU for n tokens x nkv heads (1 when there is already enough work),
/// with at least min_keys of the longest context's keys per split (32..1024; any other value
/// means the default, 128).
int decode_attention_splits(int n, int n_kv_heads, int n_sms, int max_kv_len = 1 << 30, int min_keys = 128) noexcept;
Status decode_attention(DType dt, const AttentionParams& p, const std::int32_t* tok_list, int n,
                        int splits, float* workspace, void* stream);

/// Prefill attention, FlashAttention-2 style on tensor cores (bf16/fp16 only): a CTA takes one
/// tile of up to PREFILL_TILE query tokens of one sequence and one query head; tiles[3*i ..] =
/// (offset into tok_list, count >= 1, unused), every token of a tile from one sequence. Causal
/// through kv_len per token; keys read from the paged cache in tiles of 64. q, k_cache and
/// v_cache must be 16-byte aligned (cudaErrorMisalignedAddress otherwise).
/// 128: two 16-row m-tiles per warp, which measured faster than one on the H100
/// (bench/results/README.md). Tiles passed to prefill_attention() hold at most this many tokens.
inline constexpr int PREFILL_TILE = 128;
constexpr int prefill_tile() noexcept { return PREFILL_TILE; }
Status prefill_attention(DType dt, const AttentionParams& p, const std::int32_t* tok_list,
                         const std::int32_t* tiles, int n_tiles, void* stream);

// ---- sampling -----------------------------------------------------------------------------

/// Per-row sampling parameters (vireo::SamplerParams without the penalties, which need the
/// history and are applied before the logits reach the GPU).
struct RowSampling {
  float temperature = 1.0f;  ///< <= 0: greedy
  int top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  std::uint64_t seed = 0;
  std::uint64_t counter = 0;  ///< the Philox counter of this draw
};

/// Batched sampling on the GPU, same algorithm and RNG as vireo::Sampler: per row, a
/// segmented radix sort (CUB) of the logits in descending order (stable: ties keep the lower
/// id), s_i = (l_i - l_max) / T, top-k, top-p over the exp(s) prefix sums, min-p, and an
/// inverse-CDF draw with u = uniform01(seed, counter). Only token ids and log-probs come back.
/// All memory is allocated at construction for max_rows x vocab.
class GpuSampler {
 public:
  GpuSampler(int max_rows, int vocab, void* stream);
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;
  /// logits: device fp32 [rows, vocab]. Writes rows tokens / logprobs to host arrays.
  /// Throws InvalidArgument for rows > max_rows or bad parameters, Error(Cuda) on failure.
  void sample(const float* logits, int rows, const RowSampling* params, std::int32_t* tokens,
              float* logprobs);

 private:
  int max_rows_, vocab_;
  void* stream_;
  std::size_t temp_bytes_ = 0;
  DeviceBuffer keys_, vals_in_, vals_out_, offsets_, temp_, cum_, params_, out_;
  PinnedBuffer host_params_, host_out_;
};

}  // namespace vireo::cuda

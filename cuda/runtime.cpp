// RAII and error helpers of cuda_api.hpp over the CUDA runtime and cuBLAS: device / pinned
// buffers, streams, event timers, the cuBLAS GEMM wrapper, host fp16/bf16 conversions.
// Every failure throws vireo::Error(ErrorCode::Cuda) (OutOfMemory for failed allocations)
// carrying the CUDA error name and text.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cuda_api.hpp"
#include "util/tuning.hpp"
#include "vireo/error.hpp"

namespace vireo::cuda {

void check(Status status, const char* what) {
  if (status == 0) return;
  auto e = static_cast<cudaError_t>(status);
  throw Error(ErrorCode::Cuda, fmt::format("{}: {} ({})", what, cudaGetErrorName(e), cudaGetErrorString(e)));
}

namespace {
void check_alloc(cudaError_t e, std::size_t bytes, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky-free allocation error
  throw Error(e == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Cuda,
              fmt::format("{} of {} bytes failed: {}", what, bytes, cudaGetErrorString(e)));
}
const char* cublas_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}
void check_blas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(ErrorCode::Cuda, fmt::format("{}: {}", what, cublas_name(s)));
}
}  // namespace

int device_count(std::string* reason) noexcept {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (reason) *reason = fmt::format("cudaGetDeviceCount failed: {}", cudaGetErrorString(e));
    return 0;
  }
  if (n == 0 && reason) *reason = "the CUDA driver reports no GPU";
  return n;
}

bool available() noexcept { return device_count(nullptr) > 0; }

std::string device_unusable(int index) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || index < 0 || index >= n) {
    cudaGetLastError();
    return fmt::format("there is no CUDA device {} ({} found)", index, n);
  }
  cudaDeviceProp prop{};
  cudaError_t e = cudaGetDeviceProperties(&prop, index);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("cuda:{} cannot be queried: {}", index, cudaGetErrorString(e));
  }
  if (prop.major < 8)
    return fmt::format("cuda:{} ({}) has compute capability {}.{}; vireo's CUDA kernels need 8.0 or newer (Ampere)",
                       index, prop.name, prop.major, prop.minor);
  e = cudaSetDevice(index);
  if (e == cudaSuccess) e = cudaFree(nullptr);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("cuda:{} ({}) is not usable: {}", index, prop.name, cudaGetErrorString(e));
  }
  if (const Status s = kernel_image_status(); s != cudaSuccess)
    return fmt::format("this build of vireo has no kernels for cuda:{} ({}, sm_{}{}): it was compiled for sm_{{{}}} "
                       "(configure with -DCMAKE_CUDA_ARCHITECTURES={}{} to add it): {}",
                       index, prop.name, prop.major, prop.minor, VIREO_CUDA_ARCHS, prop.major, prop.minor,
                       cudaGetErrorString(cudaError_t(s)));
  return "";
}

void synchronize(void* stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

Status last_error() noexcept { return cudaGetLastError(); }

Status copy_device(void* dst, const void* src, std::size_t bytes, void* stream) noexcept {
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream));
}

bool hopper_or_later() noexcept {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  constexpr int kDevices = 64;
  static std::atomic<int> known[kDevices];  // 0 not asked yet, 1 yes, 2 no
  if (dev < 0 || dev >= kDevices) return false;
  int k = known[dev].load(std::memory_order_relaxed);
  if (k == 0) {
    int major = 0;
    k = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 ? 1 : 2;
    known[dev].store(k, std::memory_order_relaxed);
  }
  return k == 1;
}

bool pdl_enabled() noexcept {
  static const bool on = detail::process_tuning().pdl;  // VIREO_PDL, docs/TUNING.md
  return on && hopper_or_later();
}

// ---- host conversions ---------------------------------------------------------------------

std::uint16_t float_to_bf16(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return std::uint16_t(u >> 16);
}
float bf16_to_float(std::uint16_t h) noexcept {
  std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint16_t float_to_half(float f) noexcept {
  // __float2half_rn semantics on the host through _Float16 (GCC >= 12 on x86-64).
  _Float16 h = static_cast<_Float16>(f);
  std::uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}
float half_to_float(std::uint16_t bits) noexcept {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}
void convert_from_f32(DType dt, const float* src, void* dst, std::size_t n) noexcept {
  if (dt == DType::F32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  auto* d = static_cast<std::uint16_t*>(dst);
  if (dt == DType::BF16)
    for (std::size_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
  else
    for (std::size_t i = 0; i < n; ++i) d[i] = float_to_half(src[i]);
}
void convert_to_f32(DType dt, const void* src, float* dst, std::size_t n) noexcept {
  if (dt == DType::F32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  auto* s = static_cast<const std::uint16_t*>(src);
  if (dt == DType::BF16)
    for (std::size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
  else
    for (std::size_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]);
}

// ---- buffers -------------------------------------------------------------------------------

namespace {
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

std::uint64_t allocation_count() noexcept { return g_allocations.load(std::memory_order_relaxed); }

std::size_t device_free_bytes() {
  std::size_t free = 0, total = 0;
  check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  return free;
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    check_alloc(cudaMalloc(&ptr_, bytes), bytes, "cudaMalloc");
  }
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}
DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}
void DeviceBuffer::upload(const void* host, std::size_t bytes, std::size_t offset) {
  if (offset + bytes > bytes_)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("upload of {} bytes at offset {} into a {}-byte device buffer", bytes, offset, bytes_));
  check(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  // A pageable H2D cudaMemcpy may return before the DMA lands; kernels on non-blocking
  // streams do not wait for the legacy stream, so finish it here.
  check(cudaStreamSynchronize(nullptr), "cudaMemcpy H2D (sync)");
}
void DeviceBuffer::download(void* host, std::size_t bytes, std::size_t offset) const {
  if (offset + bytes > bytes_)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("download of {} bytes at offset {} from a {}-byte device buffer", bytes, offset, bytes_));
  check(cudaMemcpy(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}
void DeviceBuffer::fill_bytes(int value) {
  if (!ptr_) return;
  check(cudaMemset(ptr_, value, bytes_), "cudaMemset");
  check(cudaStreamSynchronize(nullptr), "cudaMemset (sync)");  // see upload()
}

PinnedBuffer::PinnedBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    check_alloc(cudaMallocHost(&ptr_, bytes), bytes, "cudaMallocHost");
  }
}
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}
PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

Stream::Stream() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  s_ = s;
}
Stream::~Stream() {
  if (s_ && owned_) cudaStreamDestroy(static_cast<cudaStream_t>(s_));
}
void Stream::synchronize() const { cuda::synchronize(s_); }
void* legacy_stream() noexcept { return static_cast<void*>(cudaStreamLegacy); }
bool Stream::capturable() const noexcept {
  auto s = static_cast<cudaStream_t>(s_);
  return s != nullptr && s != cudaStreamLegacy && s != cudaStreamPerThread;
}

EventTimer::EventTimer() {
  cudaEvent_t a = nullptr, b = nullptr;
  check(cudaEventCreate(&a), "cudaEventCreate");
  cudaError_t e = cudaEventCreate(&b);
  if (e != cudaSuccess) {
    cudaEventDestroy(a);
    check(e, "cudaEventCreate");
  }
  a_ = a;
  b_ = b;
}
EventTimer::~EventTimer() {
  if (a_) cudaEventDestroy(static_cast<cudaEvent_t>(a_));
  if (b_) cudaEventDestroy(static_cast<cudaEvent_t>(b_));
}
void EventTimer::start(void* stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(a_), static_cast<cudaStream_t>(stream)), "cudaEventRecord");
}
float EventTimer::stop(void* stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(b_), static_cast<cudaStream_t>(stream)), "cudaEventRecord");
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(b_)), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(a_), static_cast<cudaEvent_t>(b_)), "cudaEventElapsedTime");
  return ms;
}

// ---- cuBLAS --------------------------------------------------------------------------------

Blas::Blas(void* stream) : stream_(stream) {
  cublasHandle_t h = nullptr;
  check_blas(cublasCreate(&h), "cublasCreate");
  handle_ = h;
  try {
    // 32 MiB, the size NVIDIA recommends for Hopper; cuBLAS then never allocates while a
    // CUDA graph is being captured.
    workspace_ = DeviceBuffer(std::size_t(32) << 20);
    check_blas(cublasSetWorkspace(h, workspace_.get(), workspace_.size()), "cublasSetWorkspace");
    check_blas(cublasSetStream(h, static_cast<cudaStream_t>(stream)), "cublasSetStream");
    check_blas(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  } catch (...) {
    cublasDestroy(h);
    throw;
  }
}
Blas::~Blas() {
  if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
}

void Blas::gemm(DType dt, const void* x, const void* w, void* y, bool y_f32, int T, int N, int K, bool accumulate) {
  // Row-major y[T, N] is column-major y^T [N, T] = W [N, K] . x^T [K, T]. Column-major, W is
  // stored as W^T [K, N] with ld K (so op T), x as x^T [K, T] with ld K (op N).
  const cudaDataType_t ab = dt == DType::F32 ? CUDA_R_32F : dt == DType::F16 ? CUDA_R_16F : CUDA_R_16BF;
  const cudaDataType_t c = y_f32 ? CUDA_R_32F : ab;
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  check_blas(cublasGemmEx(static_cast<cublasHandle_t>(handle_), CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &alpha, w, ab, K,
                          x, ab, K, &beta, y, c, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cublasGemmEx");
}

}  // namespace vireo::cuda

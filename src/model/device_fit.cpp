#include "model/device_fit.hpp"

#include <fmt/format.h>

#include "model/model_impl.hpp"
#include "plan/plan_internal.hpp"
#ifdef VIREO_WITH_CUDA
#include "cuda_api.hpp"
#endif

namespace vireo::detail {
namespace {

// Weight bytes of the network once on the GPU (as vireo::plan counts them).
std::uint64_t gpu_weight_bytes(const ModelImpl& m) {
  PlanOptions po;
  po.device = DeviceKind::CUDA;
  po.dtype = m.opts.dtype;
  po.gpu_quantized = m.opts.gpu_quantized;
  std::uint64_t total = 0;
  auto add = [&](const WeightView& w) {
    if (w) total += tensor_device_bytes(w.type, std::uint64_t(w.rows), std::uint64_t(w.cols), po);
  };
  add(m.net.tok_embd);
  for (const LayerProgram& l : m.net.layers)
    for (const Op& op : l.ops) {
      add(op.w);
      add(op.bias);
    }
  add(m.net.final_norm.w);
  if (m.net.output.data != m.net.tok_embd.data) add(m.net.output);
  return total;
}

}  // namespace

std::optional<Error> cuda_unfit(const ModelImpl& m) {
#ifdef VIREO_WITH_CUDA
  const int index = m.opts.device.index;
  if (const std::string why = cuda::device_unusable(index); !why.empty())
    return Error(why.rfind("there is no CUDA device", 0) == 0 ? ErrorCode::Cuda : ErrorCode::Unsupported, why);
  const std::uint64_t need = gpu_weight_bytes(m) + kGpuReserveBytes;
  const std::uint64_t free = cuda::device_free_bytes();
  if (free < need)
    return Error(ErrorCode::OutOfMemory,
                 fmt::format("cuda:{} has {:.2f} GiB free; the weights take {:.2f} GiB on it plus {:.2f} GiB for "
                             "workspaces and the runtime (try gpu_quantized, a smaller model, or the CPU)",
                             index, double(free) / double(1ull << 30), double(need - kGpuReserveBytes) / double(1ull << 30),
                             double(kGpuReserveBytes) / double(1ull << 30)));
  return std::nullopt;
#else
  (void)m;
  return Error(ErrorCode::Unsupported, "this build of vireo has no CUDA backend (configure with the CUDA toolkit)");
#endif
}

}  // namespace vireo::detail

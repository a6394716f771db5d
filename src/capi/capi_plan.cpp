// C API: memory planning before load (vireo_plan_file over vireo::plan).
#include "capi/capi_internal.hpp"
#include "vireo/plan.hpp"

using namespace vireo::capi;

extern "C" {

vireo_plan_params vireo_plan_default_params(void) {
  const vireo::PlanOptions d;
  vireo_plan_params p{};
  p.device = VIREO_DEVICE_CPU;
  p.dtype = VIREO_DTYPE_BF16;
  p.gpu_quantized = d.gpu_quantized;
  p.kv_precision = VIREO_KV_MODEL;
  p.block_size = d.block_size;
  p.context = d.context;
  p.concurrency = d.concurrency;
  p.max_batch_tokens = d.max_batch_tokens;
  p.device_memory_bytes = d.device_memory_bytes;
  p.memory_budget_bytes = d.memory_budget_bytes;
  p.reserve_bytes = d.reserve_bytes;
  return p;
}

vireo_status vireo_plan_file(const char* path, const vireo_plan_params* params, vireo_memory_plan* out) {
  return guard("vireo_plan_file", [&] {
    const std::filesystem::path file = utf8_path(path, "path");
    need(out, "out");
    const vireo_plan_params p = params ? *params : vireo_plan_default_params();
    vireo::PlanOptions o;
    const int device = enum_value(p.device), kv = enum_value(p.kv_precision);
    if (device != VIREO_DEVICE_CPU && device != VIREO_DEVICE_CUDA)
      invalid("device " + std::to_string(device) + " is not one of CPU, CUDA");
    o.device = device == VIREO_DEVICE_CUDA ? vireo::DeviceKind::CUDA : vireo::DeviceKind::CPU;
    switch (enum_value(p.dtype)) {
      case VIREO_DTYPE_F32: o.dtype = vireo::DType::F32; break;
      case VIREO_DTYPE_F16: o.dtype = vireo::DType::F16; break;
      case VIREO_DTYPE_BF16: o.dtype = vireo::DType::BF16; break;
      default: invalid("dtype " + std::to_string(enum_value(p.dtype)) + " is not one of F32, F16, BF16");
    }
    if (kv != VIREO_KV_MODEL && kv != VIREO_KV_INT8)
      invalid("kv_precision " + std::to_string(kv) + " is not one of MODEL, INT8");
    o.gpu_quantized = p.gpu_quantized;
    o.kv_precision = kv == VIREO_KV_INT8 ? vireo::KVPrecision::Int8 : vireo::KVPrecision::Model;
    o.block_size = p.block_size;
    o.context = p.context;
    o.concurrency = p.concurrency;
    o.max_batch_tokens = p.max_batch_tokens;
    o.device_memory_bytes = p.device_memory_bytes;
    o.memory_budget_bytes = p.memory_budget_bytes;
    o.reserve_bytes = p.reserve_bytes;
    const vireo::MemoryPlan m = vireo::plan(file, o);
    vireo_memory_plan r{};
    r.weight_bytes = m.weight_bytes;
    r.file_bytes = m.file_bytes;
    r.kv_bytes_per_token = m.kv_bytes_per_token;
    r.kv_bytes = m.kv_bytes;
    r.workspace_bytes = m.workspace_bytes;
    r.reserve_bytes = m.reserve_bytes;
    r.total_bytes = m.total_bytes;
    r.context = m.options.context;
    r.concurrency = m.options.concurrency;
    r.fits = m.fits;
    r.budget_kv_tokens = m.budget_kv_tokens;
    r.budget_max_context = m.budget_max_context;
    r.budget_max_concurrency = m.budget_max_concurrency;
    r.devices_needed = m.devices_needed;
    *out = r;
  });
}

}  // extern "C"

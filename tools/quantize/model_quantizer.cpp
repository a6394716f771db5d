// Whole-model quantization (see model_quantizer.hpp): plan the types, calibrate when the
// method needs it, fold AWQ scales, quantize every tensor (tensors in parallel), write the
// GGUF through a temporary file.
#include "quantize/model_quantizer.hpp"

#include <fmt/format.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "quantize/awq.hpp"
#include "quantize/calibration.hpp"
#include "vireo/error.hpp"
#include "vireo/model.hpp"

namespace vireo::quant {

using gguf::TensorType;

TensorType planned_type(TensorType type, std::uint64_t cols, const std::string& tensor) {
  const std::uint64_t be = gguf::block_elements(type);
  if (be != 0 && cols % be == 0) return type;
  TensorType fb;
  switch (type) {
    case TensorType::Q3_K: fb = TensorType::IQ4_NL; break;
    case TensorType::Q4_K: fb = TensorType::Q5_0; break;
    case TensorType::Q5_K: fb = TensorType::Q5_1; break;
    case TensorType::Q6_K: fb = TensorType::Q8_0; break;
    default:
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tensor '{}': rows of {} elements do not split into {} blocks of {} (and {} has no "
                              "fallback type)", tensor, cols, gguf::to_string(type), be, gguf::to_string(type)));
  }
  if (cols % gguf::block_elements(fb) != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tensor '{}': rows of {} elements split neither into {} blocks of {} nor into its "
                            "fallback {}'s blocks of {}", tensor, cols, gguf::to_string(type), be,
                            gguf::to_string(fb), gguf::block_elements(fb)));
  return fb;
}

std::uint32_t ftype_of(TensorType type) {
  switch (type) {
    case TensorType::F32: return 0;
    case TensorType::F16: return 1;
    case TensorType::Q4_0: return 2;
    case TensorType::Q4_1: return 3;
    case TensorType::Q8_0: return 7;
    case TensorType::Q5_0: return 8;
    case TensorType::Q5_1: return 9;
    case TensorType::Q3_K: return 11;  // Q3_K_S: Q3_K throughout
    case TensorType::Q4_K: return 14;  // Q4_K_S
    case TensorType::Q5_K: return 16;  // Q5_K_S
    case TensorType::Q6_K: return 18;
    case TensorType::IQ4_NL: return 25;
    case TensorType::BF16: return 32;
    default:
      throw Error(ErrorCode::Unsupported, fmt::format("vireo-quantize does not write {} files", gguf::to_string(type)));
  }
}

namespace {

struct Tensor {
  const gguf::TensorInfo* info = nullptr;
  TensorType type = TensorType::F32;
  std::int64_t rows = 1, cols = 0;
  std::vector<float> f32;
  std::vector<std::byte> out;
};

bool is_embedding(const std::string& n) { return n == "token_embd.weight" || n == "output.weight"; }

void fold_awq(std::map<std::string, Tensor*>& by_name, const Calibration& cal, const ModelQuantizeOptions& o,
              int n_layers) {
  auto get = [&](const std::string& n) -> Tensor* {
    const auto it = by_name.find(n);
    return it == by_name.end() ? nullptr : it->second;
  };
  int groups = 0;
  double err_rtn = 0, err_awq = 0;
  for (int L = 0; L < n_layers; ++L) {
    const std::string p = fmt::format("blk.{}.", L);
    struct Group {
      std::string producer;  // 1-D norm weight, or a linear whose rows produce the channels
      std::vector<std::string> linears;
    };
    const Group gs[] = {{p + "attn_norm.weight", {p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"}},
                        {p + "ffn_norm.weight", {p + "ffn_gate.weight", p + "ffn_up.weight"}},
                        {p + "ffn_up.weight", {p + "ffn_down.weight"}}};
    for (const Group& g : gs) {
      Tensor* prod = get(g.producer);
      const InputStats* st = cal.find(g.linears[0]);
      std::vector<Tensor*> lin;
      for (const auto& n : g.linears)
        if (Tensor* t = get(n)) lin.push_back(t);
      if (!prod || !st || lin.size() != g.linears.size() || st->n_sample() == 0) {
        if (o.log) o.log(fmt::format("AWQ: {} skipped (not the Llama layout or no calibration input)", g.linears[0]));
        continue;
      }
      const std::int64_t cols = lin[0]->cols;
      const bool norm = prod->info->shape.size() == 1;
      if (st->cols != cols || (norm ? std::int64_t(prod->f32.size()) != cols : prod->rows != cols)) continue;
      std::vector<AwqLinear> al;
      for (Tensor* t : lin) al.push_back({t->f32.data(), t->rows, t->type});
      const std::vector<float> mean = st->act_mean();
      const AwqResult r = awq_search(al, cols, st->sample.data(), st->n_sample(), mean.data(), o.awq_grid);
      err_rtn += r.err_rtn, err_awq += r.err;
      ++groups;
      for (Tensor* t : lin)
        for (std::int64_t row = 0; row < t->rows; ++row)
          for (std::int64_t c = 0; c < cols; ++c) t->f32[std::size_t(row * cols + c)] *= r.scales[std::size_t(c)];
      if (norm) {
        for (std::int64_t c = 0; c < cols; ++c) prod->f32[std::size_t(c)] /= r.scales[std::size_t(c)];
      } else {
        for (std::int64_t c = 0; c < cols; ++c)
          for (std::int64_t k = 0; k < prod->cols; ++k) prod->f32[std::size_t(c * prod->cols + k)] /= r.scales[std::size_t(c)];
      }
      if (o.log) o.log(fmt::format("AWQ: {} alpha {:.2f}, sample output error {:.4g} -> {:.4g}", g.linears[0], r.alpha,
                                   r.err_rtn, r.err));
    }
  }
  if (o.log) o.log(fmt::format("AWQ: {} groups scaled; summed sample output error {:.4g} (RTN) -> {:.4g}", groups,
                               err_rtn, err_awq));
}

}  // namespace

void quantize_model(const std::filesystem::path& in, const std::filesystem::path& out,
                    const ModelQuantizeOptions& o) {
  const gguf::File f = gguf::File::open(in);
  const std::uint32_t ftype = ftype_of(o.type);
  std::vector<Tensor> ts(f.tensors().size());
  std::map<std::string, Tensor*> by_name;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    Tensor& t = ts[i];
    const gguf::TensorInfo& ti = f.tensors()[i];
    t.info = &ti;
    t.cols = std::int64_t(ti.shape.at(0));
    t.rows = std::int64_t(ti.n_elements / std::max<std::uint64_t>(1, ti.shape[0]));
    if (ti.shape.size() == 1) t.type = TensorType::F32;
    else if (is_embedding(ti.name)) t.type = planned_type(o.embd_type, ti.shape[0], ti.name);
    else t.type = planned_type(o.type, ti.shape[0], ti.name);
    t.f32.resize(ti.n_elements);
    gguf::dequantize(ti.type, ti.data, t.f32.data(), ti.n_elements);
    by_name[ti.name] = &t;
  }

  std::unique_ptr<Calibration> cal;
  if (o.method != Method::RTN) {
    if (o.calibration.empty())
      throw Error(ErrorCode::InvalidArgument, "GPTQ / AWQ need calibration tokens");
    ModelOptions mo;
    mo.device = Device::cpu();
    mo.n_threads = o.n_threads;
    mo.cancel = o.cancel;
    const Model model = Model::load(in, mo);
    CalibrationOptions co;
    co.ctx = o.calib_ctx;
    co.hessian = o.method == Method::GPTQ;
    co.cancel = o.cancel;
    if (o.progress) co.progress = [&](float x) { o.progress("calibrate", x); };
    cal = std::make_unique<Calibration>(co);
    cal->run(model, o.calibration);
    if (o.method == Method::AWQ) fold_awq(by_name, *cal, o, model.config().n_layers);
  }

  // Quantize the tensors on n_threads workers (largest-first would balance better; the
  // file order keeps the output deterministic either way).
  std::atomic<std::size_t> next{0}, done{0};
  std::mutex mu;
  std::exception_ptr failure;
  auto work = [&] {
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= ts.size()) return;
      try {
        if (o.cancel && o.cancel->load()) throw Error(ErrorCode::Cancelled, "quantization cancelled");
        Tensor& t = ts[i];
        const InputStats* st = cal && o.method == Method::GPTQ ? cal->find(t.info->name) : nullptr;
        if (st && !st->h.empty() && t.info->shape.size() == 2 && st->cols == t.cols) {
          t.out = gptq_quantize(t.f32.data(), t.rows, t.cols, st->h, t.type, o.gptq);
        } else {
          t.out.resize(gguf::row_bytes(t.type, t.f32.size()));
          gguf::quantize(t.type, t.f32.data(), t.out.data(), t.f32.size());
        }
        t.f32 = {};
        const std::size_t d = done.fetch_add(1) + 1;
        std::lock_guard lk(mu);
        if (o.progress) o.progress("quantize", float(d) / float(ts.size()));
      } catch (...) {
        std::lock_guard lk(mu);
        if (!failure) failure = std::current_exception();
        next.store(ts.size());
        return;
      }
    }
  };
  const int nt = std::max(1, o.n_threads > 0 ? o.n_threads : int(std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int k = 1; k < nt; ++k) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);

  gguf::Writer w;
  bool has_ftype = false;
  for (const auto& [k, v] : f.metadata()) {
    if (k == "general.file_type") {
      w.set(k, gguf::Value::make_uint(gguf::ValueType::UInt32, ftype));
      has_ftype = true;
    } else {
      w.set(k, v);
    }
  }
  if (!has_ftype) w.set("general.file_type", gguf::Value::make_uint(gguf::ValueType::UInt32, ftype));
  if (!f.find("general.quantization_version"))
    w.set("general.quantization_version", gguf::Value::make_uint(gguf::ValueType::UInt32, 2));
  for (Tensor& t : ts) w.add_tensor(t.info->name, t.type, t.info->shape, t.out);

  const std::filesystem::path tmp = out.string() + ".vireo-part";
  try {
    const std::vector<std::byte> image = w.bytes(3, f.alignment());
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    if (!os) throw Error(ErrorCode::Io, fmt::format("'{}': cannot open for writing", tmp.string()));
    os.write(reinterpret_cast<const char*>(image.data()), std::streamsize(image.size()));
    os.close();
    if (!os) throw Error(ErrorCode::Io, fmt::format("'{}': write failed", tmp.string()));
    if (o.cancel && o.cancel->load()) throw Error(ErrorCode::Cancelled, "quantization cancelled");
    std::filesystem::rename(tmp, out);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace vireo::quant

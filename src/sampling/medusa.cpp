// MedusaHeads: loading and checking a sidecar against its base, and the heads' arithmetic
// on the CPU (the residual blocks per head, then one multi-row product with the base's LM
// head for all heads at once, so the output matrix is read once per round).
#include "vireo/medusa.hpp"

#include <fmt/format.h>

#include <cmath>
#include <optional>
#include <thread>

#include "cpu/ops.hpp"
#include "cpu/thread_pool.hpp"
#include "model/access.hpp"
#include "model/model_impl.hpp"
#include "platform/path.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/tokenizer.hpp"

namespace vireo {
namespace detail {

struct MedusaImpl {
  const Model* base = nullptr;
  std::optional<gguf::File> file;
  int heads = 0, layers = 0, d = 0;
  std::vector<std::vector<WeightView>> w;  // [head][block]
  std::vector<std::vector<std::vector<float>>> b;
  std::unique_ptr<cpu::ThreadPool> pool;
};

}  // namespace detail

namespace {

std::uint32_t get_u32(const gguf::File& f, const char* key, std::int64_t lo, std::int64_t hi) {
  const gguf::Value* v = f.find(key);
  if (!v) throw Error(ErrorCode::InvalidModel, fmt::format("Medusa sidecar: metadata '{}' is missing", key));
  const std::int64_t x = v->as_int();
  if (x < lo || x > hi)
    throw Error(ErrorCode::InvalidModel, fmt::format("Medusa sidecar: '{}' = {} is outside [{}, {}]", key, x, lo, hi));
  return std::uint32_t(x);
}

}  // namespace

std::string MedusaHeads::vocab_hash(const Model& m) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto eat = [&](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ull;
  };
  const Tokenizer& t = m.tokenizer();
  for (Token i = 0; i < t.vocab_size(); ++i) {
    for (char c : t.token_text(i)) eat(static_cast<unsigned char>(c));
    eat(0);
  }
  return fmt::format("{:016x}", h);
}

MedusaHeads MedusaHeads::load(const std::filesystem::path& path, const Model& base) {
  auto im = std::make_unique<detail::MedusaImpl>();
  im->base = &base;
  im->file.emplace(gguf::File::open(path));
  const gguf::File& f = *im->file;
  const gguf::Value* arch = f.find("general.architecture");
  if (!arch || arch->type() != gguf::ValueType::String || arch->as_string() != "medusa")
    throw Error(ErrorCode::InvalidModel,
                fmt::format("'{}' is not a Medusa sidecar (general.architecture is not \"medusa\")", platform::path_to_utf8(path)));
  const std::uint32_t version = get_u32(f, "medusa.format_version", 0, 1u << 30);
  if (version != 1)
    throw Error(ErrorCode::Unsupported, fmt::format("Medusa sidecar format version {} (this vireo reads 1)", version));
  im->heads = int(get_u32(f, "medusa.head_count", 1, 8));
  im->layers = int(get_u32(f, "medusa.layer_count", 1, 4));
  im->d = int(get_u32(f, "medusa.embedding_length", 1, 1 << 20));
  const int vocab = int(get_u32(f, "medusa.vocab_size", 1, 1 << 24));
  const ModelConfig& c = base.config();
  if (im->d != c.d_model)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Medusa sidecar '{}' was made for d_model {}, the base has {}", platform::path_to_utf8(path), im->d,
                            c.d_model));
  if (vocab != c.vocab_size)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Medusa sidecar '{}' was made for a vocabulary of {} tokens, the base has {}",
                            platform::path_to_utf8(path), vocab, c.vocab_size));
  const gguf::Value* hv = f.find("medusa.vocab_hash");
  if (!hv || hv->type() != gguf::ValueType::String)
    throw Error(ErrorCode::InvalidModel, "Medusa sidecar: metadata 'medusa.vocab_hash' is missing");
  if (base.has_tokenizer() && hv->as_string() != vocab_hash(base))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Medusa sidecar '{}' was made for another vocabulary (hash {}, the base's {})",
                            platform::path_to_utf8(path), hv->as_string(), vocab_hash(base)));
  im->w.resize(std::size_t(im->heads));
  im->b.resize(std::size_t(im->heads));
  for (int k = 0; k < im->heads; ++k)
    for (int r = 0; r < im->layers; ++r) {
      const std::string wn = fmt::format("medusa.{}.{}.weight", k, r), bn = fmt::format("medusa.{}.{}.bias", k, r);
      const gguf::TensorInfo& wt = f.tensor(wn);
      if (wt.shape.size() != 2 || wt.shape[0] != std::uint64_t(im->d) || wt.shape[1] != std::uint64_t(im->d) ||
          (wt.type != gguf::TensorType::F32 && wt.type != gguf::TensorType::F16))
        throw Error(ErrorCode::InvalidModel,
                    fmt::format("Medusa sidecar: tensor '{}' must be F32 or F16 of shape {{{}, {}}}", wn, im->d, im->d));
      const gguf::TensorInfo& bt = f.tensor(bn);
      if (bt.shape.size() != 1 || bt.shape[0] != std::uint64_t(im->d))
        throw Error(ErrorCode::InvalidModel, fmt::format("Medusa sidecar: tensor '{}' must have {} values", bn, im->d));
      im->w[std::size_t(k)].push_back({wt.type, wt.data, im->d, im->d, wt.name});
      std::vector<float> bias(static_cast<std::size_t>(im->d));
      gguf::dequantize(bt.type, bt.data, bias.data(), bias.size());
      im->b[std::size_t(k)].push_back(std::move(bias));
    }
  const int threads = vireo::detail::Access::model(base).opts.n_threads;
  im->pool = std::make_unique<cpu::ThreadPool>(threads > 0 ? threads
                                                            : int(std::max(1u, std::thread::hardware_concurrency())));
  return MedusaHeads(std::move(im));
}

MedusaHeads::MedusaHeads(std::unique_ptr<detail::MedusaImpl> impl) : impl_(std::move(impl)) {}
MedusaHeads::MedusaHeads(MedusaHeads&&) noexcept = default;
MedusaHeads& MedusaHeads::operator=(MedusaHeads&&) noexcept = default;
MedusaHeads::~MedusaHeads() = default;
int MedusaHeads::head_count() const noexcept { return impl_->heads; }
int MedusaHeads::layer_count() const noexcept { return impl_->layers; }
const Model& MedusaHeads::base() const noexcept { return *impl_->base; }

void MedusaHeads::logits(std::span<const float> hidden, std::vector<std::vector<float>>& out) const {
  const auto& im = *impl_;
  const std::int64_t d = im.d, K = im.heads;
  if (hidden.size() != std::size_t(d))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Medusa heads: a hidden state of {} values, the heads take {}", hidden.size(), d));
  std::vector<float> x(static_cast<std::size_t>(K * d)), y(static_cast<std::size_t>(d));
  for (std::int64_t k = 0; k < K; ++k) {
    float* xk = x.data() + k * d;
    std::copy(hidden.begin(), hidden.end(), xk);
    for (int r = 0; r < im.layers; ++r) {
      cpu::matmul(im.w[std::size_t(k)][std::size_t(r)], xk, 1, y.data(), *im.pool);
      const std::vector<float>& bias = im.b[std::size_t(k)][std::size_t(r)];
      for (std::int64_t i = 0; i < d; ++i) {
        const float z = y[std::size_t(i)] + bias[std::size_t(i)];
        xk[i] += z / (1.0f + std::exp(-z));
      }
    }
  }
  const detail::WeightView& E = vireo::detail::Access::model(*im.base).net.output;
  std::vector<float> all(std::size_t(K * E.rows));
  cpu::matmul(E, x.data(), K, all.data(), *im.pool);
  out.resize(std::size_t(K));
  for (std::int64_t k = 0; k < K; ++k) out[std::size_t(k)].assign(all.begin() + k * E.rows, all.begin() + (k + 1) * E.rows);
}

}  // namespace vireo

// The families vireo runs, by GGUF general.architecture.
#include <fmt/format.h>

#include <string_view>

#include "model/arch/arch.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {
namespace {

struct Family {
  std::string_view arch;
  DescribeFn describe;
};
constexpr Family kFamilies[] = {
    {"llama", describe_llama},  {"mistral", describe_mistral}, {"qwen2", describe_qwen2},
    {"phi3", describe_phi3},    {"gemma3", describe_gemma3},
};

}  // namespace

Network describe_network(const gguf::File& f, WeightStore& store, ModelConfig& cfg) {
  ArchReader r(f, store);
  for (const Family& fam : kFamilies)
    if (fam.arch == r.arch()) {
      Network net = fam.describe(r, cfg);
      if (const gguf::Value* n = f.find("general.name"); n && n->type() == gguf::ValueType::String)
        cfg.name = n->as_string();
      net.validate();
      return net;
    }
  std::string names;
  for (const Family& fam : kFamilies) names += (names.empty() ? "" : ", ") + std::string(fam.arch);
  throw Error(ErrorCode::Unsupported,
              fmt::format("architecture '{}' is not supported (supported: {})", r.arch(), names));
}

}  // namespace vireo::detail

// Tokenizer::from_gguf: reads the tokenizer.ggml.* metadata of a GGUF file into a
// TokenizerSpec (plain vectors) and hands it to the builder in tokenizer.cpp. Only reading
// and type checking happens here, so the builder stays testable without a model file.
#include <fmt/format.h>

#include "tokenizer/tokenizer_impl.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"

namespace vireo {
namespace {

using gguf::ValueType;

// The array at `key` (nullptr when absent), checked to hold one of the `elem` types; an
// empty array of another type passes (it holds nothing of the wrong type), and callers
// read it through array_size(), which works for every element type.
const gguf::Value* array_of(const gguf::File& f, std::string_view key,
                            std::initializer_list<ValueType> elem) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return nullptr;
  if (v->type() != ValueType::Array)
    throw Error(ErrorCode::InvalidModel, fmt::format("{} is a {}, expected an array", key, gguf::to_string(v->type())));
  bool ok = false;
  for (ValueType t : elem) ok |= v->array_type() == t;
  if (!ok && v->array_size() != 0)
    throw Error(ErrorCode::InvalidModel, fmt::format("{} is an array of {}, expected another element type",
                                                     key, gguf::to_string(v->array_type())));
  return v;
}

// Per-token arrays (token_type, scores) are either empty (absent in effect) or hold one
// entry per token. Checked before anything is converted, so a mismatched array is never
// widened to 8 bytes per entry. Returns whether to convert: not when there are no tokens,
// which the builder reports (after checking the tokenizer model, as it always did).
bool check_per_token(const gguf::Value& v, std::string_view key, std::size_t n_tokens) {
  const std::size_t n = v.array_size();
  if (n == 0 || n_tokens == 0) return false;
  if (n != n_tokens)
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{} has {} entries but there are {} tokens", key, n, n_tokens));
  return true;
}

Token token_id(const gguf::File& f, std::string_view key) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return -1;
  const std::int64_t id = v->as_int();
  if (id < -1 || id > INT32_MAX)
    throw Error(ErrorCode::InvalidModel, fmt::format("{} = {} is not a valid token id", key, id));
  return Token(id);
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const gguf::File& f) {
  detail::TokenizerSpec spec;
  const gguf::Value* model = f.find("tokenizer.ggml.model");
  if (model == nullptr) throw Error(ErrorCode::InvalidModel, "tokenizer.ggml.model is missing");
  spec.model = model->as_string();
  if (const gguf::Value* pre = f.find("tokenizer.ggml.pre")) spec.pre = pre->as_string();

  const gguf::Value* tokens = array_of(f, "tokenizer.ggml.tokens", {ValueType::String});
  if (tokens == nullptr) throw Error(ErrorCode::InvalidModel, "tokenizer.ggml.tokens is missing");
  const std::size_t n_tokens = tokens->array_size();
  if (n_tokens != 0) {
    spec.tokens.reserve(n_tokens);
    for (const auto& t : tokens->as_array()) spec.tokens.push_back(t.as_string());
  }

  if (const gguf::Value* types = array_of(f, "tokenizer.ggml.token_type",
                                          {ValueType::Int32, ValueType::UInt32, ValueType::Int8, ValueType::UInt8,
                                           ValueType::Int16, ValueType::UInt16, ValueType::Int64, ValueType::UInt64});
      types != nullptr && check_per_token(*types, "tokenizer.ggml.token_type", n_tokens)) {
    const std::vector<std::int64_t> ks = types->as_int_array();
    spec.token_types.reserve(ks.size());
    for (const std::int64_t k : ks)
      spec.token_types.push_back(k < INT32_MIN || k > INT32_MAX ? -1 : std::int32_t(k));
  }
  if (const gguf::Value* merges = array_of(f, "tokenizer.ggml.merges", {ValueType::String})) {
    if (merges->array_size() != 0) {
      spec.merges.reserve(merges->array_size());
      for (const auto& m : merges->as_array()) spec.merges.push_back(m.as_string());
    }
  } else if (spec.model == "gpt2") {
    throw Error(ErrorCode::InvalidModel, "tokenizer.ggml.merges is missing for a gpt2 tokenizer");
  }
  if (const gguf::Value* scores = array_of(f, "tokenizer.ggml.scores", {ValueType::Float32, ValueType::Float64});
      scores != nullptr && check_per_token(*scores, "tokenizer.ggml.scores", n_tokens)) {
    const std::vector<double> ds = scores->as_float_array();
    spec.scores.reserve(ds.size());
    for (const double d : ds) spec.scores.push_back(float(d));
  }
  spec.bos = token_id(f, "tokenizer.ggml.bos_token_id");
  spec.eos = token_id(f, "tokenizer.ggml.eos_token_id");
  spec.eot = token_id(f, "tokenizer.ggml.eot_token_id");
  spec.unk = token_id(f, "tokenizer.ggml.unknown_token_id");
  if (const gguf::Value* v = f.find("tokenizer.ggml.add_bos_token")) spec.add_bos = v->as_bool();
  if (const gguf::Value* v = f.find("tokenizer.ggml.add_space_prefix")) spec.add_space_prefix = v->as_bool();
  if (const gguf::Value* v = f.find("tokenizer.chat_template")) spec.chat_template = v->as_string();
  return detail::TokenizerAccess::build(std::move(spec));
}

}  // namespace vireo

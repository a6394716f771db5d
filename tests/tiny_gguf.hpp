// Tiny Llama GGUF images written in the tests (a byte-level GPT-2 vocabulary of 256 tokens,
// random weights): the model-loading tests and the CUDA tests of the read-only weight types.
#pragma once
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "vireo/gguf.hpp"

namespace vireo::test {

// GPT-2's byte -> printable code point mapping, spelled out independently of the tokenizer.
inline std::vector<std::string> byte_tokens() {
  std::vector<std::string> out(256);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    int cp = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174) ? b : 256 + extra++;
    std::string s;
    if (cp < 0x80) s += char(cp);
    else {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    out[std::size_t(b)] = s;
  }
  return out;
}

struct TinySpec {
  using TensorType = gguf::TensorType;
  std::string arch = "llama";
  int layers = 2, d = 32, heads = 4, kv = 2, ff = 48;
  int vocab_rows = 256;
  bool untied = false;       // write an output.weight of its own
  bool untied_copy = false;  // write an output.weight equal to token_embd.weight
  std::function<bool(const std::string&)> skip = [](const std::string&) { return false; };
  std::function<std::vector<std::uint64_t>(const std::string&, std::vector<std::uint64_t>)> reshape =
      [](const std::string&, std::vector<std::uint64_t> s) { return s; };
  // Matrices (2-D tensors) as random blocks of this type, fp16 scale fields in a realistic
  // range; with as_f32 the same blocks are written dequantized, as F32.
  TensorType mat_type = TensorType::F32;
  bool as_f32 = false;
  // Extra metadata, set after the standard keys (e.g. an unsupported RoPE scaling).
  std::function<void(gguf::Writer&)> extra = [](gguf::Writer&) {};
};

inline std::vector<std::byte> tiny_gguf(const TinySpec& s) {
  using gguf::TensorType;
  using gguf::Value;
  using gguf::ValueType;
  gguf::Writer w;
  const std::string a = s.arch + ".";
  w.set("general.architecture", Value::make_string(s.arch));
  w.set(a + "block_count", Value::make_uint(ValueType::UInt32, std::uint64_t(s.layers)));
  w.set(a + "embedding_length", Value::make_uint(ValueType::UInt32, std::uint64_t(s.d)));
  w.set(a + "feed_forward_length", Value::make_uint(ValueType::UInt32, std::uint64_t(s.ff)));
  w.set(a + "attention.head_count", Value::make_uint(ValueType::UInt32, std::uint64_t(s.heads)));
  w.set(a + "attention.head_count_kv", Value::make_uint(ValueType::UInt32, std::uint64_t(s.kv)));
  w.set(a + "context_length", Value::make_uint(ValueType::UInt32, 256));
  w.set(a + "attention.layer_norm_rms_epsilon", Value::make_float(ValueType::Float32, 1e-5));
  w.set("tokenizer.ggml.model", Value::make_string("gpt2"));
  w.set("tokenizer.ggml.pre", Value::make_string("gpt2"));
  std::vector<Value> toks;
  for (auto& t : byte_tokens()) toks.push_back(Value::make_string(t));
  w.set("tokenizer.ggml.tokens", Value::make_array(ValueType::String, std::move(toks)));
  w.set("tokenizer.ggml.merges", Value::make_array(ValueType::String, {}));
  s.extra(w);

  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.2f);
  std::vector<std::byte> embd_bytes;
  auto add = [&](const std::string& name, std::vector<std::uint64_t> shape, bool ones = false) {
    if (s.skip(name)) return;
    shape = s.reshape(name, shape);
    std::uint64_t n = 1;
    for (auto x : shape) n *= x;
    if (s.mat_type != TensorType::F32 && shape.size() == 2) {
      auto q = random_blocks(s.mat_type, n, rng);
      if (!s.as_f32) {
        w.add_tensor(name, s.mat_type, shape, q);
        return;
      }
      std::vector<std::byte> f(n * 4);
      gguf::dequantize(s.mat_type, q.data(), reinterpret_cast<float*>(f.data()), std::size_t(n));
      w.add_tensor(name, TensorType::F32, shape, f);
      return;
    }
    std::vector<float> v(n);
    for (auto& x : v) x = ones ? 1.0f : nd(rng);
    std::vector<std::byte> bytes(n * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    if (name == "token_embd.weight") embd_bytes = bytes;
    w.add_tensor(name, TensorType::F32, shape, bytes);
  };
  const std::uint64_t d = std::uint64_t(s.d), hd = d / std::uint64_t(s.heads), kvd = hd * std::uint64_t(s.kv),
                      ff = std::uint64_t(s.ff);
  add("token_embd.weight", {d, std::uint64_t(s.vocab_rows)});
  add("output_norm.weight", {d}, true);
  for (int l = 0; l < s.layers; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {d}, true);
    add(b + "attn_q.weight", {d, d});
    add(b + "attn_k.weight", {d, kvd});
    add(b + "attn_v.weight", {d, kvd});
    add(b + "attn_output.weight", {d, d});
    add(b + "ffn_norm.weight", {d}, true);
    add(b + "ffn_gate.weight", {d, ff});
    add(b + "ffn_up.weight", {d, ff});
    add(b + "ffn_down.weight", {ff, d});
  }
  if (s.untied) add("output.weight", {d, std::uint64_t(s.vocab_rows)});  // drawn last: the rest is unchanged
  if (s.untied_copy) w.add_tensor("output.weight", TensorType::F32, {d, std::uint64_t(s.vocab_rows)}, embd_bytes);
  return w.bytes();
}

inline std::filesystem::path write_tmp(const std::vector<std::byte>& bytes, const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("vireo-test-" + name + ".gguf");
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  f.close();
  REQUIRE(f);
  return p;
}

}  // namespace vireo::test

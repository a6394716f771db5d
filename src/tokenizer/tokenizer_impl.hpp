// Internals of vireo::Tokenizer: the plain-data description of a vocabulary
// (TokenizerSpec, what tokenizer.ggml.* metadata holds) and the builder that turns it into a
// Tokenizer. Tokenizer::from_gguf only reads metadata into a TokenizerSpec, so tests can
// build tokenizers from vocabularies written in code, without a model file.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/bpe.hpp"
#include "tokenizer/pretokenize.hpp"
#include "vireo/tokenizer.hpp"

namespace vireo::detail {

/// Token types as numbered by GGUF / llama.cpp (tokenizer.ggml.token_type).
enum class TokenType : std::int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct TokenizerSpec {
  std::string model = "gpt2";   ///< tokenizer.ggml.model: "gpt2" or "llama"
  std::string pre = "default";  ///< tokenizer.ggml.pre
  std::vector<std::string> tokens;
  std::vector<std::int32_t> token_types;  ///< empty: every token Normal
  std::vector<std::string> merges;        ///< "left right", rank = index (gpt2)
  std::vector<float> scores;              ///< llama; empty: all 0
  Token bos = -1, eos = -1, eot = -1, unk = -1;
  std::optional<bool> add_bos;  ///< default: true for "llama", false for "gpt2"
  bool add_space_prefix = true;  ///< llama: prepend "▁" to the text (after specials too)
  std::string chat_template;
};

struct TokenizerAccess {
  using Impl = Tokenizer::Impl;
  /// Validates the spec (InvalidModel / Unsupported naming the offending value) and builds.
  static Tokenizer build(TokenizerSpec spec);
  static const Tokenizer::Impl& impl(const Tokenizer& t) { return *t.impl_; }
};

/// A rendered conversation: its text, and the byte ranges that came from the caller (roles
/// and contents), in order. Only the rest (the template's own markers) may become special
/// tokens when the conversation is encoded (Tokenizer::encode_chat).
struct ChatText {
  std::string text;
  std::vector<std::pair<std::size_t, std::size_t>> caller;  ///< [begin, end) into text

  void put(std::string_view s) { text += s; }
  void user(std::string_view s) {
    if (s.empty()) return;
    if (!caller.empty() && caller.back().second == text.size()) caller.back().second += s.size();
    else caller.emplace_back(text.size(), text.size() + s.size());
    text += s;
  }
};

/// Renders `messages` with the format recognised in `tmpl` (ChatML, Llama-3, Gemma, Llama-2).
/// Throws Unsupported for an unknown or empty template.
ChatText render_chat_template(const std::string& tmpl, std::span<const ChatMessage> messages,
                              bool add_generation_prompt);

/// Gemma's turn format (see chat_template.cpp). Throws InvalidArgument when the roles do
/// not alternate as Gemma's template requires.
ChatText render_gemma(std::span<const ChatMessage> messages, bool add_generation_prompt);

/// GPT-2's reversible byte <-> printable code point mapping (bytes_to_unicode()).
std::uint32_t byte_to_cp(std::uint8_t b) noexcept;

}  // namespace vireo::detail

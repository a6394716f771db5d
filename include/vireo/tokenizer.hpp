// Tokenizer built from a model file's own vocabulary.
//
// Two families: byte-level BPE ("gpt2" in GGUF: SmolLM2, Llama-3, GPT-2, Qwen2) with merge
// ranks and a hand-written, linear-time pre-tokenizer per model family (no std::regex), and
// the SentencePiece-style "llama" vocabulary (Llama-2, TinyLlama) with scores and byte
// fallback. Special/control tokens are matched verbatim in the input only when
// EncodeOptions::parse_special is set (off by default: text a user typed, such as
// "<|im_end|>", stays text). encode_chat() renders a conversation and makes special only the
// chat template's own markers. Decoding streams safely through StreamDecoder, which
// holds back an incomplete UTF-8 character until its last byte arrives.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vireo/types.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {
namespace gguf { class File; }
namespace detail { struct TokenizerAccess; }

struct ChatMessage {
  std::string role;     ///< "system", "user" or "assistant"
  std::string content;
};

struct EncodeOptions {
  /// Prepend BOS when the vocabulary asks for it (tokenizer.ggml.add_bos_token).
  bool add_special = true;
  /// Recognise special tokens such as "<|im_start|>" written in the text. Off by default, so
  /// untrusted text cannot inject control tokens; turn it on only for text you wrote (a
  /// rendered template). User-defined (added, non-special) tokens are recognised either way,
  /// as llama.cpp and HF do.
  bool parse_special = false;
};

class Tokenizer {
 public:
  /// Build from tokenizer.ggml.* metadata. Throws InvalidModel / Unsupported.
  static Tokenizer from_gguf(const gguf::File& file);

  Tokenizer(const Tokenizer&);
  Tokenizer& operator=(const Tokenizer&);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<Token> encode(std::string_view text, EncodeOptions opts = {}) const;
  /// Concatenated bytes of the tokens (special tokens rendered as their text unless
  /// skip_special). Throws InvalidArgument for an out-of-range id.
  std::string decode(std::span<const Token> tokens, bool skip_special = false) const;
  /// Raw bytes of one token after byte-level / SentencePiece decoding.
  std::string token_bytes(Token t) const;
  /// The vocabulary entry as stored in the file (e.g. "Ġthe").
  const std::string& token_text(Token t) const;

  int32_t vocab_size() const noexcept;
  Token bos() const noexcept;  ///< -1 when the vocabulary has none
  Token eos() const noexcept;
  /// End of generation: EOS, EOT ("<|im_end|>", "<|eot_id|>") and similar.
  bool is_eog(Token t) const noexcept;
  bool is_special(Token t) const noexcept;
  /// "gpt2" or "llama" (tokenizer.ggml.model) and the pre-tokenizer name ("smollm", "llama-bpe", "gpt2", ...).
  const std::string& model_kind() const noexcept;
  const std::string& pre_tokenizer() const noexcept;

  /// Render a conversation with the model's chat template (ChatML, Llama-3, Gemma, Llama-2/Zephyr
  /// formats are recognised from tokenizer.chat_template; a file without one whose vocabulary
  /// has <start_of_turn> and <end_of_turn> gets Gemma's). With add_generation_prompt the
  /// assistant header is appended. Throws Unsupported for an unknown template.
  std::string apply_chat_template(std::span<const ChatMessage> messages,
                                  bool add_generation_prompt = true) const;
  /// The token ids of that rendering, with BOS when add_special and the vocabulary asks
  /// for it. Only the template's own markers become special tokens: a role or content that
  /// contains "<|im_end|>" or any other special token's text is encoded as plain text.
  /// For a conversation without such text this equals
  /// encode(apply_chat_template(...), {.parse_special = true}).
  std::vector<Token> encode_chat(std::span<const ChatMessage> messages, bool add_generation_prompt = true,
                                 bool add_special = true) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class StreamDecoder;
  friend struct detail::TokenizerAccess;  // builds a Tokenizer from plain vectors (src/tokenizer)
};

/// Turns a token stream into text pieces that are always whole UTF-8 characters.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true);
  /// Returns the text that became complete with this token (may be empty).
  std::string push(Token t);
  /// Returns whatever is held back (an incomplete tail is emitted as U+FFFD).
  std::string flush();

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;
  bool after_special_ = true;  // SentencePiece: the next text token drops its space prefix
};

}  // namespace vireo
VIREO_CXX_API_END

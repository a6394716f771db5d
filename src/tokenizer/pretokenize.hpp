// Pre-tokenizers: split text into the pieces that BPE then encodes one at a time.
//
// A pre-tokenizer is a list of split rules applied in sequence, as HF tokenizers' Sequence
// of Split(..., behavior="isolated") pre-tokenizers and llama.cpp's regex lists work: each
// rule cuts every piece of the previous rule into its matches and the gaps between them,
// searching left to right (at each position the rule's alternatives in order; no match
// there: the position joins the gap). A rule sees one piece at a time, so "end of text" in
// a lookahead or "$" is the end of that piece.
//
// Each regex is implemented by hand as a matcher that, at a position, returns the end of
// the match the regex engine would find there (greedy quantifiers with the backtracking
// the lookahead (?!\S) forces), or "no match". Matchers are loops over code points with no
// recursion and no std::regex; a failed match costs O(1) amortised (whitespace runs are
// measured once per piece), so splitting is linear in the input and uses constant stack.
//
//   Gpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   Llama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   Qwen2   as Llama3 with \p{N} (one digit per piece) instead of \p{N}{1,3}
//   SmolLM  \p{N}, then Gpt2 (HF Sequence[Digits(individual_digits), ByteLevel(use_regex)];
//           also StarCoder, Refact, Command-R)
//   Falcon  [\p{P}\$\+<=>\^~\|`]+, then Gpt2, then [0-9][0-9][0-9]
//   DeepseekLlm    [\r\n], \s?[Latin letters]+, \s?[ASCII/fullwidth punctuation]+, \s+$,
//                  [CJK/Hangul]+, \p{N}+ (the character sets of llama.cpp's list)
//   DeepseekCoder  [\r\n], \s?\p{L}+, \s?\p{P}+, [CJK/Hangul]+, \p{N}
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.hpp"

namespace vireo::detail {

enum class PreKind { Gpt2, Llama3, Qwen2, SmolLM, Falcon, DeepseekLlm, DeepseekCoder };

struct PreTokenizerChoice {
  PreKind kind;
  bool ignore_merges;  ///< a piece that is a whole vocabulary entry is kept (Llama-3)
};

/// The pre-tokenizer named by tokenizer.ggml.pre for a byte-level BPE vocabulary (the names
/// llama.cpp's converter writes), or nullopt for a name vireo does not implement.
std::optional<PreTokenizerChoice> pre_tokenizer_for(std::string_view name);
/// The names pre_tokenizer_for accepts, comma separated (for error messages).
std::string supported_pre_tokenizers();

/// A set of code points: Unicode classes plus explicit ranges.
struct CharClass {
  enum Flag : std::uint8_t { L = 1, N = 2, P = 4, S = 8 };
  std::uint8_t flags = 0;
  std::vector<CodeRange> ranges;  // sorted, inclusive
  std::uint64_t ascii[2] = {0, 0};
  static CharClass make(std::uint8_t flags, std::vector<CodeRange> ranges = {});
  bool has(std::uint32_t cp) const noexcept;
};

class PreTokenizer {
 public:
  explicit PreTokenizer(PreKind kind);
  PreKind kind() const noexcept { return kind_; }

  /// Calls emit(piece) for each piece of `text` in order (never an empty piece).
  template <class F>
  void split(std::string_view text, F&& emit) const {
    split_level(text, 0, [](void* ctx, std::string_view p) { (*static_cast<F*>(ctx))(p); }, &emit);
  }

  struct Rule {
    enum class Op { Gpt2, Llama3, Qwen2, Run, SpacesAtEnd } op = Op::Gpt2;
    enum class Prefix { None, Whitespace } prefix = Prefix::None;  // Run: optional "\s?"
    CharClass body;                                                 // Run: the repeated class
    std::uint32_t min = 1, max = UINT32_MAX;                        // Run: repeat count
  };

 private:
  using EmitFn = void (*)(void*, std::string_view);
  void split_level(std::string_view s, std::size_t level, EmitFn emit, void* ctx) const;

  PreKind kind_;
  std::vector<Rule> rules_;
};

}  // namespace vireo::detail

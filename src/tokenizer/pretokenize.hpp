// Pre-tokenizers: split text into the pieces that BPE then encodes one at a time.
//
// Each supported regex is implemented by hand as a matcher that, at a position, returns the
// end of the match the regex engine would find there (alternatives tried in order, greedy
// quantifiers with the backtracking the lookahead (?!\S) forces). Every matcher is a loop
// over code points with no recursion and no std::regex, and consumes what it scans except
// for a bounded look-ahead, so splitting is linear in the input and uses constant stack.
//
//   Gpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   Llama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   Qwen2   as Llama3 with \p{N} (one digit per piece) instead of \p{N}{1,3}
//   SmolLM  HF Sequence[Digits(individual_digits), ByteLevel(use_regex)]: every \p{N} code
//           point is a piece of its own, and the Gpt2 regex runs on each run of non-digits
//           (so "end of text" for the lookahead is the end of that run).
#pragma once
#include <cstddef>
#include <string_view>

namespace vireo::detail {

enum class PreKind { Gpt2, Llama3, Qwen2, SmolLM };

class PreTokenizer {
 public:
  PreTokenizer(PreKind kind, std::string_view text) noexcept : kind_(kind), s_(text) {}
  /// Stores the next piece (never empty) and returns true, or returns false at the end.
  bool next(std::string_view& piece) noexcept;

 private:
  std::size_t match_gpt2(std::size_t i, std::size_t end) const noexcept;
  std::size_t match_llama3(std::size_t i, std::size_t end, std::size_t max_digits) const noexcept;

  PreKind kind_;
  std::string_view s_;
  std::size_t pos_ = 0;
  std::size_t seg_end_ = 0;  // SmolLM: end of the current run of non-digits
};

}  // namespace vireo::detail

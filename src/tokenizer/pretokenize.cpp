// Hand-written, linear-time pre-tokenizer regexes (see pretokenize.hpp for the patterns).
//
// Notes on the two lookahead alternatives, which are the only places a regex engine would
// backtrack: for a whitespace run [i, k) followed by a non-space character,
//   \s+(?!\S)   matches [i, start of the last run character) when the run has >= 2
//               characters (the last one is left for " ?\p{L}+" and friends), and fails for
//               a single character, which then falls to \s+;
//   \s*[\r\n]+  matches [i, end of the last '\r'/'\n' inside the run), or fails if the run
//               has no line break.
// At the end of the text (or of a SmolLM non-digit run) the lookahead succeeds on the whole run.
#include "tokenizer/pretokenize.hpp"

#include "tokenizer/unicode.hpp"

namespace vireo::detail {
namespace {

struct Cp {
  std::uint32_t cp;
  std::size_t len;  // 0 at the end of the range
  CpClass cls;
};

inline Cp cp_at(std::string_view s, std::size_t i, std::size_t end) noexcept {
  if (i >= end) return {0, 0, CpClass::Other};
  Cp c{};
  c.len = utf8_decode(s.substr(0, end), i, c.cp);
  c.cls = classify(c.cp);
  return c;
}

inline char lower_ascii(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

// Length of a contraction ('s 't 're 've 'm 'll 'd) at s[i] == '\'', or 0.
std::size_t contraction(std::string_view s, std::size_t i, std::size_t end, bool icase) noexcept {
  auto at = [&](std::size_t k) -> char {
    if (k >= end) return 0;
    return icase ? lower_ascii(s[k]) : s[k];
  };
  const char a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  const char b = at(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// End of the run of code points of class `cls` starting at i.
std::size_t run_of(std::string_view s, std::size_t i, std::size_t end, CpClass cls) noexcept {
  while (i < end) {
    Cp c = cp_at(s, i, end);
    if (c.cls != cls) break;
    i += c.len;
  }
  return i;
}

// Whitespace run starting at i (s[i] is whitespace): the run end, the start of its last
// character, and the end of its last '\r' / '\n' (0 when there is none).
struct SpaceRun {
  std::size_t end, last_start, last_nl_end;
};
SpaceRun space_run(std::string_view s, std::size_t i, std::size_t end) noexcept {
  SpaceRun r{i, i, 0};
  while (i < end) {
    Cp c = cp_at(s, i, end);
    if (c.cls != CpClass::Space) break;
    r.last_start = i;
    i += c.len;
    if (c.cp == '\r' || c.cp == '\n') r.last_nl_end = i;
  }
  r.end = i;
  return r;
}

// \s+(?!\S)|\s+ at a whitespace character.
std::size_t match_trailing_space(const SpaceRun& r, std::size_t i, std::size_t end) noexcept {
  if (r.end == end) return r.end;             // lookahead sees the end: whole run
  if (r.last_start > i) return r.last_start;  // leave the last space for the next piece
  return r.end;                               // single character: plain \s+
}

}  // namespace

std::size_t PreTokenizer::match_gpt2(std::size_t i, std::size_t end) const noexcept {
  const Cp c = cp_at(s_, i, end);
  if (c.cp == '\'') {
    if (std::size_t n = contraction(s_, i, end, false)) return i + n;
  }
  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional leading ' ' then a class run.
  std::size_t j = i;
  CpClass cls = c.cls;
  if (c.cp == ' ') {
    const Cp n = cp_at(s_, i + 1, end);
    if (n.len != 0 && n.cls != CpClass::Space) {
      j = i + 1;
      cls = n.cls;
    }
  }
  if (cls != CpClass::Space) return run_of(s_, j, end, cls);
  return match_trailing_space(space_run(s_, i, end), i, end);
}

std::size_t PreTokenizer::match_llama3(std::size_t i, std::size_t end,
                                       std::size_t max_digits) const noexcept {
  const Cp c = cp_at(s_, i, end);
  if (c.cp == '\'') {
    if (std::size_t n = contraction(s_, i, end, true)) return i + n;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.cls == CpClass::Letter) return run_of(s_, i, end, CpClass::Letter);
  if (c.cp != '\r' && c.cp != '\n' && c.cls != CpClass::Number) {
    const Cp n = cp_at(s_, i + c.len, end);
    if (n.len != 0 && n.cls == CpClass::Letter) return run_of(s_, i + c.len, end, CpClass::Letter);
  }
  // \p{N}{1,max_digits}
  if (c.cls == CpClass::Number) {
    std::size_t j = i;
    for (std::size_t k = 0; k < max_digits; ++k) {
      const Cp d = cp_at(s_, j, end);
      if (d.len == 0 || d.cls != CpClass::Number) break;
      j += d.len;
    }
    return j;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  std::size_t j = i;
  bool other = c.cls == CpClass::Other;
  if (c.cp == ' ') {
    const Cp n = cp_at(s_, i + 1, end);
    if (n.len != 0 && n.cls == CpClass::Other) {
      j = i + 1;
      other = true;
    }
  }
  if (other) {
    j = run_of(s_, j, end, CpClass::Other);
    while (j < end && (s_[j] == '\r' || s_[j] == '\n')) ++j;
    return j;
  }
  // c is whitespace here: \s*[\r\n]+ | \s+(?!\S) | \s+
  const SpaceRun r = space_run(s_, i, end);
  if (r.last_nl_end != 0) return r.last_nl_end;
  return match_trailing_space(r, i, end);
}

bool PreTokenizer::next(std::string_view& piece) noexcept {
  const std::size_t n = s_.size();
  if (pos_ >= n) return false;
  std::size_t e = pos_;
  switch (kind_) {
    case PreKind::Gpt2: e = match_gpt2(pos_, n); break;
    case PreKind::Llama3: e = match_llama3(pos_, n, 3); break;
    case PreKind::Qwen2: e = match_llama3(pos_, n, 1); break;
    case PreKind::SmolLM: {
      if (pos_ >= seg_end_) {
        const Cp c = cp_at(s_, pos_, n);
        if (c.cls == CpClass::Number) {  // a digit is a piece of its own
          e = pos_ + c.len;
          seg_end_ = e;
          break;
        }
        std::size_t k = pos_;  // find the end of this run of non-digits
        while (k < n) {
          const Cp d = cp_at(s_, k, n);
          if (d.cls == CpClass::Number) break;
          k += d.len;
        }
        seg_end_ = k;
      }
      e = match_gpt2(pos_, seg_end_);
      break;
    }
  }
  if (e <= pos_) e = pos_ + 1;  // defensive: always make progress
  piece = s_.substr(pos_, e - pos_);
  pos_ = e;
  return true;
}

}  // namespace vireo::detail

// TextStream: stop strings over a token stream. A byte-level vocabulary built here (ids
// 0..255 are the bytes, plus a few merged tokens and an end-of-text special) makes every
// case exact: a stop string split over tokens, beginning inside a token, false starts that
// must be released, several stop strings, a multi-byte character, and a randomized check
// against a brute-force reference (the final text is the decoded text cut at the earliest
// stop string; after each token, what is released is everything except the longest tail
// that is a proper prefix of a stop string).
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_impl.hpp"
#include "tokenizer/unicode.hpp"
#include "vireo/error.hpp"
#include "vireo/text_stream.hpp"

using namespace vireo;

namespace {

struct Vocab {
  Tokenizer tok;
  Token eot;
  Token xen;   // "xEN"
  Token bca;   // "bca"
  Token ab;    // "ab"
};

// GPT-2 byte-level text of raw bytes.
std::string bl(std::string_view raw) {
  std::string out;
  for (char c : raw) detail::utf8_append(out, detail::byte_to_cp(static_cast<std::uint8_t>(c)));
  return out;
}

const Vocab& vocab() {
  static const Vocab v = [] {
    detail::TokenizerSpec spec;
    spec.model = "gpt2";
    spec.pre = "gpt2";
    for (int b = 0; b < 256; ++b) spec.tokens.push_back(bl(std::string(1, char(b))));
    spec.token_types.assign(256, 1);
    auto add = [&](const std::string& text, int type) {
      spec.tokens.push_back(type == 1 ? bl(text) : text);
      spec.token_types.push_back(type);
      return Token(spec.tokens.size() - 1);
    };
    const Token xen = add("xEN", 1), bca = add("bca", 1), ab = add("ab", 1);
    const Token eot = add("<|end|>", 3);  // control
    spec.eos = eot;
    return Vocab{detail::TokenizerAccess::build(spec), eot, xen, bca, ab};
  }();
  return v;
}

std::vector<Token> bytes(std::string_view s) {
  std::vector<Token> t;
  for (char c : s) t.push_back(Token(static_cast<unsigned char>(c)));
  return t;
}

// Push every token, collecting the pieces; returns them and whether a stop happened.
std::vector<std::string> run(TextStream& ts, const std::vector<Token>& toks, bool flush = true) {
  std::vector<std::string> pieces;
  for (Token t : toks) pieces.push_back(ts.push(t).text);
  if (flush) pieces.push_back(ts.flush());
  return pieces;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

}  // namespace

TEST_CASE("text stream: a stop string split over tokens is held back, then dropped", "[cpu][serve]") {
  TextStream ts(vocab().tok, {"END"});
  auto pieces = run(ts, bytes("Hi END world"), false);
  // "H", "i", " " come out at once; "E" and "N" are held; "D" completes the stop.
  CHECK(pieces == std::vector<std::string>{"H", "i", " ", "", "", "", "", "", "", "", "", ""});
  CHECK(ts.stopped());
  CHECK(ts.released() == "Hi ");
  CHECK(ts.flush().empty());
}

TEST_CASE("text stream: a false start is released when it cannot become the stop string", "[cpu][serve]") {
  TextStream ts(vocab().tok, {"END"});
  auto pieces = run(ts, bytes("ENx ENDE"), false);
  CHECK(pieces == std::vector<std::string>{"", "", "ENx", " ", "", "", "", ""});
  CHECK(ts.stopped());
  CHECK(ts.released() == "ENx ");
}

TEST_CASE("text stream: a stop string that begins inside a token", "[cpu][serve]") {
  const Vocab& v = vocab();
  TextStream ts(v.tok, {"END"});
  auto p1 = ts.push(Token('a'));
  auto p2 = ts.push(v.xen);  // "xEN": "x" is safe, "EN" may start "END"
  CHECK(p1.text == "a");
  CHECK(p2.text == "x");
  CHECK(ts.held_back() == 2);
  auto p3 = ts.push(Token('D'));
  CHECK(p3.stopped);
  CHECK(p3.text.empty());
  CHECK(ts.released() == "ax");
}

TEST_CASE("text stream: the earliest of several stop strings wins; text after it is dropped", "[cpu][serve]") {
  const Vocab& v = vocab();
  // "x", "c", "ab": the last token completes "cab" (starting at 1) and "ab" (at 2) at once.
  TextStream ts(v.tok, {"ab", "cab"});
  auto pieces = run(ts, {Token('x'), Token('c'), v.ab}, false);
  CHECK(pieces == std::vector<std::string>{"x", "", ""});
  CHECK(ts.stopped());
  // After a stop, tokens are ignored.
  auto late = ts.push(Token('z'));
  CHECK(late.stopped);
  CHECK(late.text.empty());
}

TEST_CASE("text stream: end of generation releases the held tail; specials are skipped", "[cpu][serve]") {
  const Vocab& v = vocab();
  TextStream ts(v.tok, {"END"});
  auto pieces = run(ts, {Token('o'), Token('k'), Token(' '), Token('E'), Token('N'), v.eot});
  CHECK(pieces.back() == "EN");  // flush
  CHECK(join(pieces) == "ok EN");
  CHECK_FALSE(ts.stopped());
  // A special token's text never matches: "<|end|>" is skipped, not decoded.
  TextStream ts2(v.tok, {"<|end|>"});
  CHECK(join(run(ts2, {Token('a'), v.eot, Token('b')})) == "ab");
}

TEST_CASE("text stream: multi-byte characters and stop strings", "[cpu][serve]") {
  // "é" is C3 A9: the first byte alone is an incomplete character (held by the decoder).
  TextStream ts(vocab().tok, {"\xC3\xA9!"});
  auto pieces = run(ts, bytes("caf\xC3\xA9?\xC3\xA9!"), false);
  CHECK(ts.stopped());
  CHECK(join(pieces) == "caf\xC3\xA9?");
  // Without a stop, a trailing incomplete character becomes U+FFFD at the end.
  TextStream plain(vocab().tok);
  CHECK(join(run(plain, bytes("a\xC3"))) == "a\xEF\xBF\xBD");
}

TEST_CASE("text stream: an empty stop string is refused", "[cpu][serve]") {
  CHECK_THROWS_AS(TextStream(vocab().tok, {"ok", ""}), Error);
}

TEST_CASE("text stream: random streams match a brute-force reference", "[cpu][serve]") {
  const Vocab& v = vocab();
  const std::vector<std::string> stops = {"abc", "bb", "cab", "cccc"};
  const std::vector<std::pair<Token, std::string>> alphabet = {
      {Token('a'), "a"}, {Token('b'), "b"}, {Token('c'), "c"}, {v.ab, "ab"}, {v.bca, "bca"}, {Token('d'), "d"}};
  std::mt19937 rng(1234);
  int stopped = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    TextStream ts(v.tok, stops);
    std::string decoded, released;
    const int n = 1 + int(rng() % 12);
    bool done = false;
    for (int i = 0; i < n && !done; ++i) {
      const auto& [tok, text] = alphabet[rng() % alphabet.size()];
      decoded += text;
      const TextStream::Piece p = ts.push(tok);
      released += p.text;
      // Reference: earliest stop occurrence in everything decoded so far.
      std::size_t cut = std::string::npos;
      for (const auto& s : stops) cut = std::min(cut, decoded.find(s));
      INFO("decoded '" << decoded << "'");
      if (cut != std::string::npos) {
        CHECK(p.stopped);
        CHECK(released == decoded.substr(0, cut));
        done = true;
        ++stopped;
        break;
      }
      REQUIRE_FALSE(p.stopped);
      std::size_t hold = 0;
      for (const auto& s : stops)
        for (std::size_t k = 1; k < s.size() && k <= decoded.size(); ++k)
          if (decoded.compare(decoded.size() - k, k, s, 0, k) == 0) hold = std::max(hold, k);
      CHECK(released == decoded.substr(0, decoded.size() - hold));
    }
    if (!done) {
      released += ts.flush();
      CHECK(released == decoded);
    }
    CHECK(ts.released() == released);
  }
  CHECK(stopped > 200);  // the alphabet hits the stop strings often
}

// Gemma 3's tokenizer and chat format.
//
// [cpu]: the Gemma turn format on a vocabulary written in code (hand-derived renderings,
// the role rules of Gemma 3's official template, its str.strip() trimming), and how a
// template is picked when the file has none. [golden]: the real Gemma 3 270M file
// (models/gemma-3-270m-q4_k_m.gguf, scripts/fetch-gemma.sh): token ids on a varied corpus
// against HF tokenizers (tests/fixtures/tokenizer_gemma3.txt), and chat renderings
// byte-identical to jinja2 running Gemma 3's official template, with their ids
// (tests/fixtures/tokenizer_gemma3_chat.txt); both written by
// scripts/golden/make_gemma_tokenizer_fixtures.py. The golden tests fail, not skip, when
// the model file is missing.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tokenizer/tokenizer_impl.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/tokenizer.hpp"

using namespace vireo;

namespace {

std::string unhex(const std::string& h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::vector<std::string> fields(const std::string& s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  for (std::size_t e; (e = s.find('\t', b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
  out.push_back(s.substr(b));
  return out;
}

std::vector<Token> ids_of(const std::string& s) {
  std::vector<Token> out;
  std::istringstream in(s);
  for (Token t; in >> t;) out.push_back(t);
  return out;
}

std::vector<std::string> lines_of(const std::string& fixture) {
  std::ifstream f(test::fixture(fixture));
  INFO("fixture " << fixture);
  REQUIRE(f.good());
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

Tokenizer gemma() {
  const auto p = std::filesystem::path(VIREO_SOURCE_DIR) / "models" / "gemma-3-270m-q4_k_m.gguf";
  INFO("model file " << p << " is missing; run scripts/fetch-gemma.sh");
  REQUIRE(std::filesystem::exists(p));
  return Tokenizer::from_gguf(gguf::File::open(p));
}

// A SentencePiece-style vocabulary with Gemma's turn tokens and no chat template.
Tokenizer tiny_gemma(std::string tmpl = {}) {
  detail::TokenizerSpec s;
  s.model = "llama";
  s.add_space_prefix = false;
  s.tokens = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "a", "\xE2\x96\x81"};
  s.token_types = {3, 3, 3, 3, 3, 3, 1, 1};
  s.bos = 2;
  s.eos = 1;
  s.chat_template = std::move(tmpl);
  return detail::TokenizerAccess::build(std::move(s));
}

}  // namespace

TEST_CASE("Gemma chat format: turns, system folded into the first turn, trimming", "[cpu][tokenizer]") {
  const Tokenizer tok = tiny_gemma();
  const std::vector<ChatMessage> one{{"user", "Hi"}};
  CHECK(tok.apply_chat_template(one, true) == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  CHECK(tok.apply_chat_template(one, false) == "<start_of_turn>user\nHi<end_of_turn>\n");
  // "assistant" is written "model"; the system message (untrimmed) opens the first turn.
  const std::vector<ChatMessage> conv{{"system", " Be brief. "}, {"user", "Q?"}, {"assistant", "A."}};
  CHECK(tok.apply_chat_template(conv, false) ==
        "<start_of_turn>user\n Be brief. \n\nQ?<end_of_turn>\n<start_of_turn>model\nA.<end_of_turn>\n");
  // Content is trimmed like Python's str.strip(): Unicode White_Space (U+3000, U+00A0) and
  // U+001C..U+001F, but not U+200B (not White_Space).
  const std::vector<ChatMessage> ws{{"user", "\x1F \xE3\x80\x80x y\xC2\xA0\n\t"}, {"assistant", "\xE2\x80\x8Bz"}};
  CHECK(tok.apply_chat_template(ws, false) ==
        "<start_of_turn>user\nx y<end_of_turn>\n<start_of_turn>model\n\xE2\x80\x8Bz<end_of_turn>\n");
  // Only a system message: nothing but the generation prompt (the template drops it too).
  const std::vector<ChatMessage> sys_only{{"system", "S"}};
  CHECK(tok.apply_chat_template(sys_only, true) == "<start_of_turn>model\n");
  // Roles must alternate user / assistant from the first turn.
  for (const std::vector<ChatMessage>& bad : {std::vector<ChatMessage>{{"assistant", "A"}},
                                              std::vector<ChatMessage>{{"user", "a"}, {"user", "b"}},
                                              std::vector<ChatMessage>{{"system", "s"}, {"assistant", "a"}}}) {
    try {
      (void)tok.apply_chat_template(bad, true);
      FAIL("accepted roles out of order");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::InvalidArgument);
      CHECK_THAT(e.what(), Catch::Contains("alternate"));
    }
  }
  CHECK(tok.is_eog(5));  // <end_of_turn> ends a generation
  CHECK(tok.is_eog(1));
  CHECK_FALSE(tok.is_eog(4));
}

TEST_CASE("chat template choice: Gemma by its turn tokens, by a template naming them, else refused",
          "[cpu][tokenizer]") {
  const std::vector<ChatMessage> one{{"user", "Hi"}};
  const std::string want = "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n";
  CHECK(tiny_gemma().apply_chat_template(one, true) == want);
  CHECK(tiny_gemma("{{ bos_token }}{{ '<start_of_turn>' + role }}").apply_chat_template(one, true) == want);
  // A file's own ChatML template wins over the vocabulary's turn tokens.
  CHECK(tiny_gemma("{% for m in messages %}<|im_start|>{{ m.role }}").apply_chat_template(one, true) ==
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // Without a template and without Gemma's tokens: Unsupported, naming the missing template.
  detail::TokenizerSpec s;
  s.model = "llama";
  s.tokens = {"<unk>", "a"};
  const Tokenizer plain = detail::TokenizerAccess::build(s);
  try {
    (void)plain.apply_chat_template(one, true);
    FAIL("rendered without a template");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Unsupported);
    CHECK_THAT(e.what(), Catch::Contains("chat template"));
  }
}

TEST_CASE("Gemma 3 token ids match HF tokenizers on the corpus", "[golden][tokenizer]") {
  const Tokenizer tok = gemma();
  CHECK(tok.vocab_size() == 262144);
  CHECK(tok.model_kind() == "llama");
  CHECK(tok.bos() == 2);
  CHECK(tok.eos() == 1);
  CHECK(tok.is_eog(106));  // <end_of_turn>
  int n = 0, long_runs = 0;
  for (const auto& line : lines_of("tokenizer_gemma3.txt")) {
    const auto f = fields(line);
    REQUIRE(f.size() == 2);
    const std::string text = unhex(f[0]);
    INFO("text \"" << (text.size() > 120 ? text.substr(0, 120) + "..." : text) << "\" (" << text.size() << " bytes)");
    const std::vector<Token> want = ids_of(f[1]);
    // The reference is HF's tokenizer(text), which matches special tokens in the text.
    const auto ids = tok.encode(text, {.add_special = false, .parse_special = true});
    CHECK(ids == want);
    CHECK(tok.decode(ids) == text);
    // add_bos: the default encoding starts with <bos>.
    std::vector<Token> with_bos{2};
    with_bos.insert(with_bos.end(), want.begin(), want.end());
    CHECK(tok.encode(text, {.parse_special = true}) == with_bos);
    long_runs += text.size() >= 600;
    ++n;
  }
  CHECK(n >= 55);
  CHECK(long_runs >= 8);
}

TEST_CASE("Gemma 3 chat rendering matches jinja2 on the official template, and its ids", "[golden][tokenizer]") {
  const Tokenizer tok = gemma();
  // The conversations of CHATS in scripts/golden/make_gemma_tokenizer_fixtures.py.
  struct Chat {
    const char* name;
    std::vector<ChatMessage> msgs;
    bool gen;
  };
  const std::vector<Chat> chats{
      {"one-user", {{"user", "What is the capital of France?"}}, true},
      {"three-turns", {{"user", "Hi!"}, {"assistant", "Hello. How can I help?"}, {"user", "Name 3 colours."}}, true},
      {"system-folded", {{"system", "Be brief."}, {"user", "Why is the sky blue?"}}, true},
      {"trimmed",
       {{"system", " Keep spaces \n"}, {"user", "  \xE3\x80\x80padded\xC2\xA0 \n"}, {"assistant", "\tok\n\n"}},
       false},
  };
  const auto lines = lines_of("tokenizer_gemma3_chat.txt");
  REQUIRE(lines.size() == chats.size());
  for (std::size_t i = 0; i < chats.size(); ++i) {
    const auto f = fields(lines[i]);
    REQUIRE(f.size() == 3);
    REQUIRE(f[0] == chats[i].name);
    INFO("chat " << f[0]);
    const std::string rendered = tok.apply_chat_template(chats[i].msgs, chats[i].gen);
    CHECK(rendered == unhex(f[1]));
    CHECK(tok.encode_chat(chats[i].msgs, chats[i].gen) == ids_of(f[2]));  // <bos> from the encoder
    CHECK(tok.encode(rendered, {.parse_special = true}) == ids_of(f[2]));
  }
}

// Fuzz target: chat-template rendering (detail::render_chat_template, what
// Tokenizer::apply_chat_template runs) on a fuzzed template text and fuzzed messages.
// Input layout: one flags byte (generation prompt; which known template family to prepend
// to the fuzzed template text, so every renderer is reached), the template text up to the
// first 0x00, then messages as role 0x00 content 0x00 pairs. An unknown template must be
// refused with vireo::Error (Unsupported); a rendered conversation must hold every message's
// content (trimmed, as the Llama formats trim it) in order, and the generation prompt when
// asked for.
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "tokenizer/tokenizer_impl.hpp"
#include "vireo/error.hpp"
#include "vireo/tokenizer.hpp"

using namespace vireo;

namespace {

std::string_view trim(std::string_view s) {
  const char* ws = " \t\n\r\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

/// The part of s that survives any strip of whitespace: Gemma's format strips as Python's
/// str.strip() does (ASCII \x1c-\x1f and Unicode spaces too), so only bytes that are
/// ASCII and not whitespace bound what must appear.
std::string_view core(std::string_view s) {
  auto keep = [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x80;
  };
  std::size_t b = 0, e = s.size();
  while (b < e && !keep(s[b])) ++b;
  while (e > b && !keep(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string until_nul(fuzz::Bytes& in) {
  std::string s;
  while (!in.empty()) {
    const char c = char(in.byte());
    if (c == '\0') break;
    s += c;
  }
  return s;
}

constexpr const char* kFamilies[] = {
    "",
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}",
    "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI "
    "assistant<|im_end|>\\n' }}{% endif %}<|im_start|>",
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}",
    "{{ bos_token + '[INST] ' + '<<SYS>>\\n' + content.strip() + ' [/INST]' }}",
    "[INST]",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Bytes in(data, size);
  const std::uint8_t flags = in.byte();
  const bool gen = (flags & 1) != 0;
  const std::string tmpl = std::string(kFamilies[(flags >> 1) % std::size(kFamilies)]) + until_nul(in);
  std::vector<ChatMessage> msgs;
  while (!in.empty() && msgs.size() < 64) {
    ChatMessage m;
    m.role = until_nul(in);
    m.content = until_nul(in);
    msgs.push_back(std::move(m));
  }
  std::string out;
  try {
    const detail::ChatText chat = detail::render_chat_template(tmpl, msgs, gen);
    out = chat.text;
    // The caller's ranges are ordered, disjoint, non-empty and inside the text.
    std::size_t prev = 0;
    for (const auto& [b, e] : chat.caller) {
      VIREO_FUZZ_CHECK(prev <= b && b < e && e <= out.size(), "a caller range is out of order or out of bounds");
      prev = e;
    }
  } catch (const Error& e) {
    // Gemma's format (picked after ChatML and Llama-3) needs user / model turns that
    // alternate: InvalidArgument otherwise.
    const bool chatml = tmpl.find("<|im_start|>") != std::string::npos,
               llama3 = tmpl.find("<|start_header_id|>") != std::string::npos,
               gemma = !chatml && !llama3 && tmpl.find("<start_of_turn>") != std::string::npos;
    if (gemma && e.code() == ErrorCode::InvalidArgument) return 0;
    VIREO_FUZZ_CHECK(e.code() == ErrorCode::Unsupported, std::string("unexpected error: ") + e.what());
    const bool known = chatml || llama3 || gemma || tmpl.find("[INST]") != std::string::npos;
    VIREO_FUZZ_CHECK(!known, "a recognisable template was refused");
    return 0;
  }
  // Gemma 3's official template folds a leading system message into the first user turn,
  // and so drops it when no other message follows (vireo renders as jinja2 does).
  const bool gemma_tmpl = tmpl.find("<start_of_turn>") != std::string::npos &&
                          tmpl.find("<|im_start|>") == std::string::npos &&
                          tmpl.find("<|start_header_id|>") == std::string::npos;
  if (gemma_tmpl && msgs.size() == 1 && msgs[0].role == "system") return 0;
  std::size_t at = 0;
  for (const ChatMessage& m : msgs) {
    const std::string_view c = gemma_tmpl ? core(m.content) : trim(m.content);
    const std::size_t p = out.find(c, at);
    VIREO_FUZZ_CHECK(p != std::string::npos, "message content missing from the rendering");
    at = p + c.size();
  }
  // The generation prompt: "assistant" (ChatML, Llama-3) or Gemma's "<start_of_turn>model".
  if (gen && tmpl.find("[INST]") == std::string::npos)
    VIREO_FUZZ_CHECK(out.find("assistant", at) != std::string::npos ||
                         out.find("<start_of_turn>model", at) != std::string::npos,
                     "no generation prompt after the last message");
  return 0;
}

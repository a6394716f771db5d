// Chat templates. vireo has no Jinja interpreter: it recognises the common template families
// by their marker tokens in tokenizer.chat_template and renders them in C++.
//
//   ChatML   ("<|im_start|>")  <|im_start|>{role}\n{content}<|im_end|>\n ... ; generation prompt
//            "<|im_start|>assistant\n". When the template carries a default system prompt
//            (SmolLM2: "{% if loop.first and messages[0]['role'] != 'system' %}{{
//            '<|im_start|>system\n...<|im_end|>\n' }}") it is read from the template text and
//            inserted when the first message is not a system message.
//   Llama-3  ("<|start_header_id|>")  <|start_header_id|>{role}<|end_header_id|>\n\n{content,
//            trimmed}<|eot_id|>; generation prompt "<|start_header_id|>assistant<|end_header_id|>\n\n".
//            The leading <|begin_of_text|> is left to the encoder's BOS (as llama.cpp does).
//   Llama-2  ("[INST]")  [INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>
//            <s>[INST] ... (Meta's template as llama.cpp renders it; the first turn's BOS is
//            left to the encoder).
//   Gemma    ("<start_of_turn>", and the format used when the file has no template but its
//            vocabulary has <start_of_turn>: Gemma 3's GGUF files carry none)
//            <start_of_turn>{user|model}\n{content, trimmed}<end_of_turn>\n ...; generation
//            prompt "<start_of_turn>model\n". As Gemma 3's official template: a leading system
//            message is folded into the first turn ("{system}\n\n" before its content, not
//            trimmed), "assistant" is written "model", the roles must alternate user /
//            assistant from the first turn, and content is trimmed like Python's str.strip().
//            The leading <bos> is left to the encoder.
#include <string_view>

#include <fmt/format.h>

#include "tokenizer/tokenizer_impl.hpp"
#include "tokenizer/unicode.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {
namespace {

std::string_view trim(std::string_view s) {
  const char* ws = " \t\n\r\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// Jinja string-literal escapes that may appear inside the default system prompt.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The default system prompt a ChatML template inserts, or nullopt when it has none.
std::optional<std::string> chatml_default_system(const std::string& tmpl) {
  if (tmpl.find("!= 'system'") == std::string::npos && tmpl.find("!= \"system\"") == std::string::npos)
    return std::nullopt;
  for (std::string_view head : {std::string_view("<|im_start|>system\n"), std::string_view("<|im_start|>system\\n")}) {
    const auto p = tmpl.find(head);
    if (p == std::string::npos) continue;
    const auto b = p + head.size();
    const auto e = tmpl.find("<|im_end|>", b);
    if (e == std::string::npos) return std::nullopt;
    return unescape(std::string_view(tmpl).substr(b, e - b));
  }
  return std::nullopt;
}

ChatText render_chatml(const std::string& tmpl, std::span<const ChatMessage> msgs, bool gen) {
  ChatText out;
  if (!msgs.empty() && msgs[0].role != "system") {
    // The template's own text, so its default system prompt is template text too.
    if (auto sys = chatml_default_system(tmpl)) out.put("<|im_start|>system\n" + *sys + "<|im_end|>\n");
  }
  for (const auto& m : msgs) {
    out.put("<|im_start|>");
    out.user(m.role);
    out.put("\n");
    out.user(m.content);
    out.put("<|im_end|>\n");
  }
  if (gen) out.put("<|im_start|>assistant\n");
  return out;
}

ChatText render_llama3(std::span<const ChatMessage> msgs, bool gen) {
  ChatText out;
  for (const auto& m : msgs) {
    out.put("<|start_header_id|>");
    out.user(m.role);
    out.put("<|end_header_id|>\n\n");
    out.user(trim(m.content));
    out.put("<|eot_id|>");
  }
  if (gen) out.put("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return out;
}

ChatText render_llama2(const std::string& tmpl, std::span<const ChatMessage> msgs) {
  const bool sys_block = tmpl.find("<<SYS>>") != std::string::npos;
  const bool bos_inside = tmpl.find("bos_token") != std::string::npos;
  const bool strip = tmpl.find("strip()") != std::string::npos;
  ChatText out;
  out.put("[INST] ");
  bool inside_turn = true;
  for (const auto& m : msgs) {
    const std::string_view content = strip ? trim(m.content) : std::string_view(m.content);
    if (!inside_turn) {
      inside_turn = true;
      out.put(bos_inside ? "<s>[INST] " : "[INST] ");
    }
    if (m.role == "system") {
      if (sys_block) {
        out.put("<<SYS>>\n");
        out.user(content);
        out.put("\n<</SYS>>\n\n");
      } else {
        out.user(content);
        out.put("\n");
      }
    } else if (m.role == "user") {
      out.user(content);
      out.put(" [/INST]");
    } else {
      out.put(" ");
      out.user(content);
      out.put(" </s>");
      inside_turn = false;
    }
  }
  return out;
}

// Python's str.strip(): Unicode White_Space and U+001C..U+001F (what str.isspace() accepts).
bool py_space(std::uint32_t cp) { return is_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

std::string_view py_strip(std::string_view s) {
  std::size_t b = 0;
  while (b < s.size()) {
    std::uint32_t cp;
    const std::size_t l = utf8_decode(s, b, cp);
    if (!py_space(cp)) break;
    b += l;
  }
  std::size_t e = s.size();
  while (e > b) {
    std::size_t k = e - 1;  // start of the last character: skip continuation bytes
    while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80 && e - k < 4) --k;
    std::uint32_t cp;
    const std::size_t l = utf8_decode(s, k, cp);
    if (k + l != e || !py_space(cp)) break;
    e = k;
  }
  return s.substr(b, e - b);
}

}  // namespace

ChatText render_gemma(std::span<const ChatMessage> msgs, bool gen) {
  const ChatMessage* system = nullptr;
  std::size_t from = 0;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = &msgs[0];
    from = 1;
  }
  ChatText out;
  for (std::size_t i = from; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    const std::size_t k = i - from;
    if ((m.role == "user") != (k % 2 == 0))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("Gemma's chat format needs the roles to alternate user/assistant/user/... "
                              "(after an optional first system message); message {} has role \"{}\"",
                              i, m.role));
    out.put("<start_of_turn>");
    out.user(m.role == "assistant" ? std::string_view("model") : std::string_view(m.role));
    out.put("\n");
    if (k == 0 && system != nullptr) {
      out.user(system->content);
      out.put("\n\n");
    }
    out.user(py_strip(m.content));
    out.put("<end_of_turn>\n");
  }
  if (gen) out.put("<start_of_turn>model\n");
  return out;
}

ChatText render_chat_template(const std::string& tmpl, std::span<const ChatMessage> messages,
                                 bool add_generation_prompt) {
  if (tmpl.find("<|im_start|>") != std::string::npos)
    return render_chatml(tmpl, messages, add_generation_prompt);
  if (tmpl.find("<|start_header_id|>") != std::string::npos)
    return render_llama3(messages, add_generation_prompt);
  if (tmpl.find("<start_of_turn>") != std::string::npos) return render_gemma(messages, add_generation_prompt);
  if (tmpl.find("[INST]") != std::string::npos) return render_llama2(tmpl, messages);
  if (tmpl.empty())
    throw Error(ErrorCode::Unsupported, "the model has no chat template (tokenizer.chat_template)");
  throw Error(ErrorCode::Unsupported,
              "unrecognised chat template (not ChatML, Llama-3, Gemma or Llama-2): \"" +
                  tmpl.substr(0, 80) + (tmpl.size() > 80 ? "...\"" : "\""));
}

}  // namespace vireo::detail

// OpenAI request parsing and response building (see openai_api.hpp). Field names, defaults
// and ranges follow the OpenAI API reference: temperature in [0, 2] (default 1), top_p in
// (0, 1] (default 1), presence / frequency penalties in [-2, 2], at most 4 stop strings,
// logit_bias {"token id": bias in [-100, 100]}, max_tokens >= 1; completions take a string prompt (or one-element array, or token ids),
// chat takes messages whose content is a string or an array of text parts.
#include "openai_api.hpp"

#include <fmt/format.h>

#include <cmath>

namespace vireo_server {

using nlohmann::json;

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError{400, message, "invalid_request_error", param, ""};
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    default: return "an integer";
  }
}

// The field when present and not null.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number(const json& body, const char* name, double def, double lo, double hi, bool lo_open = false) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number()) bad(name, fmt::format("'{}' must be a number, got {}", name, type_name(*v)));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    bad(name, fmt::format("'{}' must be in {}{}, {}], got {}", name, lo_open ? "(" : "[", lo, hi, x));
  return x;
}

std::optional<std::int64_t> integer(const json& body, const char* name, std::int64_t lo, std::int64_t hi) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) bad(name, fmt::format("'{}' must be an integer, got {}", name, type_name(*v)));
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > std::uint64_t(hi))
    bad(name, fmt::format("'{}' must be at most {}", name, hi));
  const std::int64_t x = v->get<std::int64_t>();
  if (x < lo || x > hi) bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
  return x;
}

bool boolean(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return false;
  if (!v->is_boolean()) bad(name, fmt::format("'{}' must be a boolean, got {}", name, type_name(*v)));
  return v->get<bool>();
}

// Features this server does not have: refused rather than silently ignored.
void refuse_unsupported(const json& body, bool chat) {
  if (auto n = integer(body, "n", 1, 128); n && *n != 1) bad("n", "only n = 1 is supported");
  if (auto b = integer(body, "best_of", 1, 128); b && *b != 1) bad("best_of", "only best_of = 1 is supported");
  if (boolean(body, "echo")) bad("echo", "echo is not supported");
  if (const json* l = field(body, "logprobs"); l && !(l->is_boolean() && !l->get<bool>()))
    bad("logprobs", "logprobs are not supported");
  for (const char* f : {"suffix", "tools", "functions", "tool_choice", "response_format"})
    if (field(body, f)) bad(f, fmt::format("'{}' is not supported", f));
  (void)chat;
}

std::vector<vireo::ChatMessage> parse_messages(const json& body) {
  const json* m = field(body, "messages");
  if (!m) bad("messages", "'messages' is required");
  if (!m->is_array() || m->empty()) bad("messages", "'messages' must be a non-empty array");
  std::vector<vireo::ChatMessage> out;
  for (std::size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!msg.is_object()) bad(where, fmt::format("'{}' must be an object, got {}", where, type_name(msg)));
    const json* role = field(msg, "role");
    if (!role || !role->is_string()) bad(where + ".role", fmt::format("'{}.role' must be a string", where));
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // the newer name of the system role
    if (r != "system" && r != "user" && r != "assistant")
      bad(where + ".role", fmt::format("'{}.role' must be system, developer, user or assistant, got '{}'", where,
                                       role->get<std::string>()));
    const json* content = field(msg, "content");
    if (!content) bad(where + ".content", fmt::format("'{}.content' is required", where));
    std::string text;
    if (content->is_string()) {
      text = content->get<std::string>();
    } else if (content->is_array()) {
      for (std::size_t k = 0; k < content->size(); ++k) {
        const json& part = (*content)[k];
        const std::string pw = fmt::format("{}.content[{}]", where, k);
        const json* type = part.is_object() ? field(part, "type") : nullptr;
        if (!type || *type != "text") bad(pw, fmt::format("'{}' must be a text part ({{\"type\": \"text\", ...}})", pw));
        const json* t = field(part, "text");
        if (!t || !t->is_string()) bad(pw + ".text", fmt::format("'{}.text' must be a string", pw));
        text += t->get<std::string>();
      }
    } else {
      bad(where + ".content", fmt::format("'{}.content' must be a string or an array of text parts, got {}", where,
                                          type_name(*content)));
    }
    out.push_back({std::move(r), std::move(text)});
  }
  return out;
}

void parse_prompt(const json& body, GenRequest& g) {
  const json* p = field(body, "prompt");
  if (!p) bad("prompt", "'prompt' is required");
  if (p->is_string()) {
    g.prompt = p->get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    g.prompt = (*p)[0].get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
    for (const json& t : *p) {
      if (!t.is_number_integer() || t.get<std::int64_t>() < 0 || t.get<std::int64_t>() > INT32_MAX)
        bad("prompt", "a token-id prompt must be an array of non-negative integers");
      g.prompt_tokens.push_back(vireo::Token(t.get<std::int64_t>()));
    }
  } else if (p->is_array() && p->size() > 1) {
    bad("prompt", "only one prompt per request is supported");
  } else {
    bad("prompt", fmt::format("'prompt' must be a string, got {}", type_name(*p)));
  }
  if (g.prompt.empty() && g.prompt_tokens.empty()) bad("prompt", "'prompt' is empty");
}

}  // namespace

GenRequest parse_request(const std::string& text, bool chat) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::parse_error& e) {
    bad("", fmt::format("malformed JSON in the request body: {}", e.what()));
  }
  if (!body.is_object()) bad("", fmt::format("the request body must be a JSON object, got {}", type_name(body)));
  GenRequest g;
  g.chat = chat;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", fmt::format("'model' must be a string, got {}", type_name(*m)));
    g.model = m->get<std::string>();
  }
  refuse_unsupported(body, chat);
  if (chat) g.messages = parse_messages(body);
  else parse_prompt(body, g);
  auto max_tokens = integer(body, "max_tokens", 1, 1 << 24);
  if (chat && !max_tokens) max_tokens = integer(body, "max_completion_tokens", 1, 1 << 24);
  g.max_tokens = max_tokens ? std::optional<int>(int(*max_tokens)) : std::nullopt;
  g.temperature = float(number(body, "temperature", 1.0, 0.0, 2.0));
  g.top_p = float(number(body, "top_p", 1.0, 0.0, 1.0, /*lo_open=*/true));
  g.presence_penalty = float(number(body, "presence_penalty", 0.0, -2.0, 2.0));
  g.frequency_penalty = float(number(body, "frequency_penalty", 0.0, -2.0, 2.0));
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) bad("seed", fmt::format("'seed' must be an integer, got {}", type_name(*s)));
    g.seed = s->is_number_unsigned() ? s->get<std::uint64_t>() : std::uint64_t(s->get<std::int64_t>());
  }
  if (const json* s = field(body, "stop")) {
    if (s->is_string()) {
      g.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (s->size() > 4) bad("stop", fmt::format("'stop' takes at most 4 strings, got {}", s->size()));
      for (const json& x : *s) {
        if (!x.is_string()) bad("stop", fmt::format("'stop' must hold strings, got {}", type_name(x)));
        g.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", fmt::format("'stop' must be a string or an array of strings, got {}", type_name(*s)));
    }
    for (const auto& x : g.stop)
      if (x.empty()) bad("stop", "a stop string cannot be empty");
  }
  if (const json* lb = field(body, "logit_bias")) {
    if (!lb->is_object()) bad("logit_bias", fmt::format("'logit_bias' must be an object, got {}", type_name(*lb)));
    for (const auto& [key, value] : lb->items()) {
      std::size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || key.empty() || id < 0 || id > INT32_MAX)
        bad("logit_bias", fmt::format("'logit_bias' keys must be token ids, got '{}'", key));
      if (!value.is_number() || !(value.get<double>() >= -100.0 && value.get<double>() <= 100.0))
        bad("logit_bias", fmt::format("'logit_bias' values must be numbers in [-100, 100] (token {})", key));
      g.logit_bias.push_back({vireo::Token(id), float(value.get<double>())});
    }
  }
  g.stream = boolean(body, "stream");
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    if (!g.stream) bad("stream_options", "'stream_options' is only allowed with stream: true");
    g.include_usage = boolean(*so, "include_usage");
  }
  return g;
}

const char* finish_reason(vireo::FinishReason r) { return vireo::to_string(r); }

namespace {

json usage_json(Usage u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json head(const std::string& id, const char* object, std::int64_t created, const std::string& model) {
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
}

json reason_json(std::optional<vireo::FinishReason> r) { return r ? json(finish_reason(*r)) : json(nullptr); }

}  // namespace

json completion_response(const std::string& id, std::int64_t created, const std::string& model,
                         const std::string& text, vireo::FinishReason reason, Usage usage) {
  json j = head(id, "text_completion", created, model);
  j["choices"] = json::array(
      {{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_reason(reason)}}});
  j["usage"] = usage_json(usage);
  return j;
}

json chat_response(const std::string& id, std::int64_t created, const std::string& model, const std::string& text,
                   vireo::FinishReason reason, Usage usage) {
  json j = head(id, "chat.completion", created, model);
  j["choices"] = json::array({{{"index", 0},
                               {"message", {{"role", "assistant"}, {"content", text}}},
                               {"logprobs", nullptr},
                               {"finish_reason", finish_reason(reason)}}});
  j["usage"] = usage_json(usage);
  return j;
}

json completion_chunk(const std::string& id, std::int64_t created, const std::string& model,
                      const std::string& text, std::optional<vireo::FinishReason> reason) {
  json j = head(id, "text_completion", created, model);
  j["choices"] =
      json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", reason_json(reason)}}});
  return j;
}

json chat_chunk(const std::string& id, std::int64_t created, const std::string& model, const std::string& text,
                bool first, std::optional<vireo::FinishReason> reason) {
  json delta = json::object();
  if (first) delta["role"] = "assistant";
  if (!text.empty() || (first && !reason)) delta["content"] = text;
  json j = head(id, "chat.completion.chunk", created, model);
  j["choices"] = json::array(
      {{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", reason_json(reason)}}});
  return j;
}

json usage_chunk(const std::string& id, std::int64_t created, const std::string& model, bool chat, Usage usage) {
  json j = head(id, chat ? "chat.completion.chunk" : "text_completion", created, model);
  j["choices"] = json::array();
  j["usage"] = usage_json(usage);
  return j;
}

}  // namespace vireo_server

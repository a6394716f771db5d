// The OpenAI API's JSON, mapped to and from vireo: request bodies of /v1/completions and
// /v1/chat/completions parsed and checked (every wrong field becomes an ApiError naming it),
// and the response objects, streaming chunks and error bodies built. No HTTP and no engine
// here, so the mapping can be read (and changed) on its own.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vireo/vireo.hpp"

namespace vireo_server {

/// An error answered as {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  ///< the offending field ("" when none)
  std::string code;   ///< "" when none
};

nlohmann::json error_body(const ApiError& e);

/// A generation request, either kind, after checking.
struct GenRequest {
  bool chat = false;
  std::string model;                        ///< "" when the body had none
  std::string prompt;                       ///< completions: the prompt text
  std::vector<vireo::Token> prompt_tokens;  ///< completions: a prompt given as token ids
  std::vector<vireo::ChatMessage> messages; ///< chat
  std::optional<int> max_tokens;            ///< absent: the server's default
  float temperature = 1.0f;
  float top_p = 1.0f;
  float presence_penalty = 0.0f, frequency_penalty = 0.0f;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> stop;
  std::vector<std::pair<vireo::Token, float>> logit_bias;  ///< token id -> bias in [-100, 100]
  bool stream = false;
  bool include_usage = false;  ///< stream_options.include_usage
};

/// Parse a /v1/completions (chat = false) or /v1/chat/completions body. Throws ApiError (400)
/// for malformed JSON, a body that is not an object, a missing or mistyped field, a value
/// out of range, or a feature this server does not have (n > 1, logprobs, echo, tools, ...).
GenRequest parse_request(const std::string& body, bool chat);

/// OpenAI's finish_reason for a vireo one: "length", "stop"; "cancelled" and "deadline" are
/// this server's (a client only sees them when the server ends a request early).
const char* finish_reason(vireo::FinishReason r);

struct Usage {
  std::size_t prompt_tokens = 0, completion_tokens = 0;
};

/// Whole responses (stream = false).
nlohmann::json completion_response(const std::string& id, std::int64_t created, const std::string& model,
                                   const std::string& text, vireo::FinishReason reason, Usage usage);
nlohmann::json chat_response(const std::string& id, std::int64_t created, const std::string& model,
                             const std::string& text, vireo::FinishReason reason, Usage usage);

/// One streaming chunk: a text piece (reason absent) or the last chunk (reason set, text
/// usually empty). Chat chunks carry a delta; the first one also the assistant role.
nlohmann::json completion_chunk(const std::string& id, std::int64_t created, const std::string& model,
                                const std::string& text, std::optional<vireo::FinishReason> reason);
nlohmann::json chat_chunk(const std::string& id, std::int64_t created, const std::string& model,
                          const std::string& text, bool first, std::optional<vireo::FinishReason> reason);
/// The usage chunk sent last when stream_options.include_usage is set (empty choices).
nlohmann::json usage_chunk(const std::string& id, std::int64_t created, const std::string& model, bool chat,
                           Usage usage);

}  // namespace vireo_server

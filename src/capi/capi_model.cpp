// C API: loading a model (progress callback that can abort the load), its shape, and text:
// tokenize / detokenize, the chat template, and the streaming detokenizer.
#include <memory>

#include "capi/capi_internal.hpp"

using namespace vireo::capi;

namespace {

vireo::ModelOptions to_options(const vireo_model_params& p, vireo_model* h) {
  vireo::ModelOptions o;
  switch (enum_value(p.device)) {
    case VIREO_DEVICE_CPU: o.device = vireo::Device::cpu(); break;
    case VIREO_DEVICE_CUDA:
      if (p.device_index < 0) invalid("device_index " + std::to_string(p.device_index) + " is negative");
      o.device = vireo::Device::cuda(p.device_index);
      break;
    case VIREO_DEVICE_BEST: o.device = vireo::Device::best(); break;
    default: invalid("device kind " + std::to_string(enum_value(p.device)) + " is not one of CPU, CUDA, BEST");
  }
  switch (enum_value(p.dtype)) {
    case VIREO_DTYPE_F32: o.dtype = vireo::DType::F32; break;
    case VIREO_DTYPE_F16: o.dtype = vireo::DType::F16; break;
    case VIREO_DTYPE_BF16: o.dtype = vireo::DType::BF16; break;
    default: invalid("dtype " + std::to_string(enum_value(p.dtype)) + " is not one of F32, F16, BF16");
  }
  if (p.n_threads < 0) invalid("n_threads " + std::to_string(p.n_threads) + " is negative");
  o.n_threads = p.n_threads;
  o.gpu_quantized = p.gpu_quantized;
  o.cpu_quantize_activations = p.cpu_quantize_activations;
  o.fallback_to_cpu = p.fallback_to_cpu;
  o.cancel = &h->cancel;
  if (p.progress) {
    // A false return raises the model's cancellation flag, which the loader checks between
    // its stages; load() below also refuses a model whose load was aborted at the last stage.
    o.progress = [fn = p.progress, user = p.progress_user_data, h](float f) {
      if (!fn(f, user)) h->cancel.store(true);
    };
  }
  return o;
}

}  // namespace

extern "C" {

vireo_model_params vireo_model_default_params(void) {
  vireo_model_params p{};
  p.device = VIREO_DEVICE_CPU;
  p.device_index = 0;
  p.dtype = VIREO_DTYPE_BF16;
  p.n_threads = 0;
  p.gpu_quantized = false;
  p.cpu_quantize_activations = false;
  p.progress = nullptr;
  p.progress_user_data = nullptr;
  p.fallback_to_cpu = false;
  return p;
}

vireo_status vireo_model_load(const char* path, const vireo_model_params* params, vireo_model** out_model) {
  return guard("vireo_model_load", [&] {
    const std::filesystem::path file = utf8_path(path, "path");
    need(out_model, "out_model");
    const vireo_model_params p = params ? *params : vireo_model_default_params();
    auto h = std::make_unique<vireo_model>();
    vireo::ModelOptions o = to_options(p, h.get());
    h->model.emplace(vireo::Model::load(file, std::move(o)));
    if (h->cancel.load()) throw vireo::Error(vireo::ErrorCode::Cancelled, "model load cancelled by the progress callback");
    *out_model = h.release();
  });
}

vireo_status vireo_model_load_from_memory(const void* data, size_t size, const vireo_model_params* params,
                                          vireo_model** out_model) {
  return guard("vireo_model_load_from_memory", [&] {
    need(data, "data");
    need(out_model, "out_model");
    if (size == 0) invalid("size is 0");
    const vireo_model_params p = params ? *params : vireo_model_default_params();
    auto h = std::make_unique<vireo_model>();
    vireo::ModelOptions o = to_options(p, h.get());
    h->model.emplace(vireo::Model::load(std::span<const std::byte>(static_cast<const std::byte*>(data), size), std::move(o)));
    if (h->cancel.load()) throw vireo::Error(vireo::ErrorCode::Cancelled, "model load cancelled by the progress callback");
    *out_model = h.release();
  });
}

void vireo_model_free(vireo_model* model) { delete model; }

vireo_status vireo_model_get_info(const vireo_model* model, vireo_model_info* out) {
  return guard("vireo_model_get_info", [&] {
    const vireo::Model& m = model_of(model);
    need(out, "out");
    const vireo::ModelConfig& c = m.config();
    vireo_model_info i{};
    i.n_layers = c.n_layers;
    i.d_model = c.d_model;
    i.n_heads = c.n_heads;
    i.n_kv_heads = c.n_kv_heads;
    i.head_dim = c.head_dim;
    i.d_ff = c.d_ff;
    i.vocab_size = c.vocab_size;
    i.context_length = c.context_length;
    i.weight_bytes = m.weight_bytes();
    i.n_params = c.n_params();
    i.device = m.device().kind == vireo::DeviceKind::CUDA ? VIREO_DEVICE_CUDA : VIREO_DEVICE_CPU;
    i.bos = m.has_tokenizer() ? m.tokenizer().bos() : -1;
    i.eos = m.has_tokenizer() ? m.tokenizer().eos() : -1;
    *out = i;
  });
}

namespace {
// Hands `toks` to a caller's (out_tokens, capacity, out_n) as every tokenizing call does.
void write_tokens(const std::vector<vireo::Token>& toks, vireo_token* out_tokens, size_t capacity, size_t* out_n) {
  if (capacity < toks.size()) {
    *out_n = toks.size();
    throw CError{VIREO_STATUS_BUFFER_TOO_SMALL, "the text has " + std::to_string(toks.size()) +
                                                    " tokens but the buffer holds " + std::to_string(capacity)};
  }
  if (!toks.empty()) need(out_tokens, "out_tokens");
  std::copy(toks.begin(), toks.end(), out_tokens);
  *out_n = toks.size();
}

std::vector<vireo::ChatMessage> chat_messages(const vireo_chat_message* messages, size_t n_messages) {
  if (n_messages) need(messages, "messages");
  std::vector<vireo::ChatMessage> msgs;
  msgs.reserve(n_messages);
  for (size_t i = 0; i < n_messages; ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    need(messages[i].role, (at + ".role").c_str());
    need(messages[i].content, (at + ".content").c_str());
    vireo::ChatMessage cm{messages[i].role, messages[i].content};
    check_utf8(cm.role, (at + ".role").c_str());
    check_utf8(cm.content, (at + ".content").c_str());
    msgs.push_back(std::move(cm));
  }
  return msgs;
}
}  // namespace

vireo_status vireo_tokenize(const vireo_model* model, const char* text, size_t text_len, bool add_special,
                            bool parse_special, vireo_token* out_tokens, size_t capacity, size_t* out_n) {
  return guard("vireo_tokenize", [&] {
    const vireo::Model& m = model_of(model);
    need(out_n, "out_n");
    if (!text && text_len) invalid("text is NULL but text_len is " + std::to_string(text_len));
    const std::string_view sv(text ? text : "", text_len);
    check_utf8(sv, "text");
    write_tokens(m.tokenizer().encode(sv, {.add_special = add_special, .parse_special = parse_special}),
                 out_tokens, capacity, out_n);
  });
}

vireo_status vireo_detokenize(const vireo_model* model, const vireo_token* tokens, size_t n, bool skip_special,
                              char* out_text, size_t capacity, size_t* out_len) {
  return guard("vireo_detokenize", [&] {
    const vireo::Model& m = model_of(model);
    check_tokens(tokens, n, m.config().vocab_size, "tokens");
    write_text(m.tokenizer().decode({tokens, n}, skip_special), out_text, capacity, out_len);
  });
}

bool vireo_token_is_eog(const vireo_model* model, vireo_token token) {
  if (!model || !model->model || !model->model->has_tokenizer()) return false;
  if (token < 0 || token >= model->model->config().vocab_size) return false;
  return model->model->tokenizer().is_eog(token);
}

vireo_status vireo_chat_apply_template(const vireo_model* model, const vireo_chat_message* messages,
                                       size_t n_messages, bool add_generation_prompt, char* out_text,
                                       size_t capacity, size_t* out_len) {
  return guard("vireo_chat_apply_template", [&] {
    const vireo::Model& m = model_of(model);
    const auto msgs = chat_messages(messages, n_messages);
    write_text(m.tokenizer().apply_chat_template(msgs, add_generation_prompt), out_text, capacity, out_len);
  });
}

vireo_status vireo_chat_tokenize(const vireo_model* model, const vireo_chat_message* messages, size_t n_messages,
                                 bool add_generation_prompt, bool add_special, vireo_token* out_tokens,
                                 size_t capacity, size_t* out_n) {
  return guard("vireo_chat_tokenize", [&] {
    const vireo::Model& m = model_of(model);
    need(out_n, "out_n");
    const auto msgs = chat_messages(messages, n_messages);
    write_tokens(m.tokenizer().encode_chat(msgs, add_generation_prompt, add_special), out_tokens, capacity, out_n);
  });
}

vireo_status vireo_stream_new(const vireo_model* model, bool skip_special, vireo_stream** out_stream) {
  return guard("vireo_stream_new", [&] {
    const vireo::Model& m = model_of(model);
    need(out_stream, "out_stream");
    auto s = std::make_unique<vireo_stream>();
    s->owner = model;
    s->decoder.emplace(m.tokenizer(), skip_special);
    *out_stream = s.release();
  });
}

void vireo_stream_free(vireo_stream* stream) { delete stream; }

vireo_status vireo_stream_push(vireo_stream* stream, vireo_token token, const char** out_text, size_t* out_len) {
  return guard("vireo_stream_push", [&] {
    need(stream, "stream");
    need(out_text, "out_text");
    need(out_len, "out_len");
    check_tokens(&token, 1, model_of(stream->owner).config().vocab_size, "token");
    stream->text = stream->decoder->push(token);
    *out_text = stream->text.c_str();
    *out_len = stream->text.size();
  });
}

vireo_status vireo_stream_flush(vireo_stream* stream, const char** out_text, size_t* out_len) {
  return guard("vireo_stream_flush", [&] {
    need(stream, "stream");
    need(out_text, "out_text");
    need(out_len, "out_len");
    stream->text = stream->decoder->flush();
    *out_text = stream->text.c_str();
    *out_len = stream->text.size();
  });
}

}  // extern "C"

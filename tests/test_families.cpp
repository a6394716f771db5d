// The model families of src/model/arch/ against HF transformers:
//  - random-weight Llama (plain, linear and llama3 RoPE scaling), Mistral (sliding window),
//    Qwen2 (QKV biases, NeoX RoPE) and Phi-3 (fused QKV / gate-up, partial RoPE, window)
//    models made by transformers' own classes (tests/fixtures/family/, written by
//    scripts/golden/make_family_fixtures.py): logits of every 5th position and the last;
//  - the real Gemma 3 270M (tests/fixtures/gemma3_golden.txt, scripts/golden/
//    make_gemma_fixtures.py): last-position logits and 32-token greedy continuations,
//    including a prompt longer than its 512-token sliding window;
//  - refusals: unknown architectures and RoPE scalings, and networks the CUDA backend's
//    fused decoder stack cannot run (checked on the pattern matcher, no GPU needed).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "model/model_impl.hpp"
#include "model/patterns.hpp"
#include "golden_cases.hpp"
#include "test_util.hpp"
#include "model/access.hpp"
#include "tiny_gguf.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

struct FamilyCase {
  std::vector<Token> ids;
  std::vector<std::pair<int, std::vector<double>>> logits;  // position, whole vocabulary
};

FamilyCase load_family(const std::string& name) {
  std::ifstream in(test::fixture("family/" + name + ".txt"));
  INFO("fixture family/" << name << ".txt (scripts/golden/make_family_fixtures.py)");
  REQUIRE(in.good());
  FamilyCase c;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string key;
    ss >> key;
    if (key == "ids") {
      Token t;
      while (ss >> t) c.ids.push_back(t);
    } else if (key == "logits") {
      int pos = 0;
      ss >> pos;
      std::vector<double> v;
      double x;
      while (ss >> x) v.push_back(x);
      c.logits.emplace_back(pos, std::move(v));
    }
  }
  return c;
}

/// Every logit of the prompt's positions, from one prefill.
std::vector<std::vector<float>> all_logits(const Model& m, std::span<const Token> ids) {
  KVCache cache(m, {.num_blocks = 16, .block_size = 8});
  Batch b;
  b.add(cache.add_sequence(), ids, All);
  Logits lg = m.forward(b, cache);
  std::vector<std::vector<float>> out;
  for (std::size_t r = 0; r < lg.rows(); ++r) out.emplace_back(lg.row(r).begin(), lg.row(r).end());
  return out;
}

}  // namespace

TEST_CASE("random models of each family match HF transformers", "[golden][families]") {
  for (const char* name : {"llama", "llama-linear", "llama3", "mistral", "qwen2", "phi3"}) {
    INFO("family case " << name);
    const FamilyCase c = load_family(name);
    REQUIRE(c.ids.size() == 40);
    const Model m = Model::load(test::fixture(std::string("family/") + name + ".gguf"), {.n_threads = 2});
    const auto got = all_logits(m, c.ids);
    double err = 0;
    for (const auto& [pos, ref] : c.logits) {
      REQUIRE(ref.size() == std::size_t(m.config().vocab_size));
      for (std::size_t i = 0; i < ref.size(); ++i)
        err = std::max(err, std::abs(double(got[std::size_t(pos)][i]) - ref[i]));
    }
    // Same fp16-rounded weights on both sides, fp32 arithmetic in different summation
    // orders through two layers: measured max errors 2.4e-6..4.1e-6 on logits of magnitude
    // ~4 (x86-64 AVX2). A wrong RoPE pairing, scaling, window, bias or fused split moves
    // them by 0.1 or more.
    CHECK(err < 1e-4);
  }
}

TEST_CASE("each family's key feature changes the logits (the goldens can fail)", "[golden][families]") {
  // The sliding window matters for positions past it, RoPE scaling for long positions:
  // plain Llama weights run with the mistral / scaled files' ids give other logits.
  const Model plain = Model::load(test::fixture("family/llama.gguf"), {.n_threads = 2});
  for (const char* name : {"llama-linear", "llama3"}) {
    const FamilyCase c = load_family(name);
    const Model scaled = Model::load(test::fixture(std::string("family/") + name + ".gguf"), {.n_threads = 2});
    const auto a = all_logits(plain, c.ids), b = all_logits(scaled, c.ids);
    INFO(name);
    CHECK(test::max_abs_diff(a.back(), b.back()) > 0.01);
  }
}

namespace {

std::vector<test::GoldenCase> load_gemma_golden() { return test::load_golden_cases("gemma3_golden.txt"); }

std::filesystem::path gemma_path() {
  const auto p = std::filesystem::path(VIREO_SOURCE_DIR) / "models" / "gemma-3-270m-q4_k_m.gguf";
  INFO("Gemma 3 file " << p << " is missing: run scripts/fetch-gemma.sh");
  REQUIRE(std::filesystem::exists(p));
  return p;
}

const Model& gemma() {
  static Model m = Model::load(gemma_path(), {.n_threads = 2});
  return m;
}

}  // namespace

TEST_CASE("Gemma 3 270M last-position logits match HF transformers", "[golden][families][gemma]") {
  const auto cases = load_gemma_golden();
  REQUIRE(cases.size() >= 5);
  CHECK(gemma().config().arch == "gemma3");
  bool past_window = false;
  for (const auto& c : cases) {
    past_window = past_window || c.ids.size() > 512;
    KVCache cache(gemma(), {.num_blocks = 64});
    Batch b;
    b.add(cache.add_sequence(), c.ids, Last);
    Logits lg = gemma().forward(b, cache);
    double err = 0, mag = 0;
    for (auto [i, ref] : c.logits) {
      err = std::max(err, std::abs(double(lg.row(0)[std::size_t(i)]) - ref));
      mag = std::max(mag, std::abs(ref));
    }
    INFO("prompt of " << c.ids.size() << " tokens: " << c.prompt.substr(0, 60) << " max |logit - ref| = " << err
                      << ", largest |logit| " << mag);
    // fp32 on both sides from the same dequantized weights; 18 layers whose norm weights
    // reach ~700 amplify summation-order differences more than SmolLM2's do. Measured max
    // errors 1.3e-5..5.3e-5 on largest logits of 19..26 (x86-64 AVX2): 2e-4 of the largest
    // logit leaves ~100x headroom and is far below what a model error (a wrong window, RoPE
    // base or norm) produces, which is O(1).
    CHECK(err < 2e-4 * std::max(mag, 1.0));
  }
  CHECK(past_window);
}

TEST_CASE("Gemma 3 270M greedy continuations match HF transformers", "[golden][families][gemma]") {
  for (const auto& c : load_gemma_golden()) {
    INFO("prompt: " << c.prompt.substr(0, 60));
    CHECK(test::greedy_tokens(gemma(), c.ids, int(c.greedy.size())) == c.greedy);
  }
}

TEST_CASE("unsupported architectures and RoPE scalings are refused by name", "[cpu][families]") {
  auto refusal = [](const test::TinySpec& s) -> std::string {
    const auto path = std::filesystem::temp_directory_path() / "vireo-family-refusal.gguf";
    {
      const auto bytes = test::tiny_gguf(s);
      std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    }
    try {
      (void)Model::load(path, {.n_threads = 1});
    } catch (const Error& e) {
      std::filesystem::remove(path);
      return std::string(e.what());
    }
    std::filesystem::remove(path);
    return "";
  };
  test::TinySpec yarn;
  yarn.extra = [](gguf::Writer& w) {
    w.set("llama.rope.scaling.type", gguf::Value::make_string("yarn"));
    w.set("llama.rope.scaling.factor", gguf::Value::make_float(gguf::ValueType::Float32, 4.0));
  };
  CHECK_THAT(refusal(yarn), Catch::Contains("RoPE scaling 'yarn'") && Catch::Contains("llama"));
  test::TinySpec moe;
  moe.extra = [](gguf::Writer& w) { w.set("llama.expert_count", gguf::Value::make_uint(gguf::ValueType::UInt32, 8)); };
  CHECK_THAT(refusal(moe), Catch::Contains("mixture of experts"));
  test::TinySpec neox;
  neox.arch = "gptneox";
  CHECK_THAT(refusal(neox), Catch::Contains("'gptneox'") && Catch::Contains("gemma3"));
  test::TinySpec linear0;
  linear0.extra = [](gguf::Writer& w) {
    w.set("llama.rope.scaling.type", gguf::Value::make_string("linear"));
    w.set("llama.rope.scaling.factor", gguf::Value::make_float(gguf::ValueType::Float32, 0.0));
  };
  CHECK_THAT(refusal(linear0), Catch::Contains("rope.scaling.factor"));
}

TEST_CASE("the CUDA fused decoder stack takes Llama-shaped networks and names what it lacks", "[cpu][families]") {
  auto net_of = [](const char* name) -> const detail::Network& {
    static std::map<std::string, Model> models;
    auto it = models.find(name);
    if (it == models.end())
      it = models.emplace(name, Model::load(test::fixture(std::string("family/") + name + ".gguf"), {.n_threads = 1}))
               .first;
    return vireo::detail::Access::model(it->second).net;
  };
  const detail::Weights w = detail::match_decoder_stack(net_of("llama"), "the CUDA backend");
  REQUIRE(w.layers.size() == 2);
  CHECK(w.layers[0].wq.rows == 64);
  CHECK(w.layers[0].wk.rows == 32);
  CHECK(w.layers[1].w_down.cols == 96);
  // Phi-3's fused projections come back as row ranges of the fused tensors, but its NeoX
  // RoPE is refused, as are Qwen2's, Mistral's window and linear scaling.
  auto refused = [&](const char* name, const char* family, const char* what) {
    INFO(name);
    CHECK_THROWS_WITH(detail::match_decoder_stack(net_of(name), "the CUDA backend"),
                      Catch::Contains(what) && Catch::Contains(std::string("the ") + family + " network"));
  };
  refused("qwen2", "qwen2", "GPT-NeoX");
  refused("phi3", "phi3", "GPT-NeoX");
  refused("mistral", "mistral", "sliding-window");
  refused("llama-linear", "llama", "linear RoPE scaling");
  CHECK_NOTHROW(detail::match_decoder_stack(net_of("llama3"), "the CUDA backend"));
  if (std::filesystem::exists(std::filesystem::path(VIREO_SOURCE_DIR) / "models" / "gemma-3-270m-q4_k_m.gguf"))
    CHECK_THROWS_WITH(detail::match_decoder_stack(vireo::detail::Access::model(gemma()).net, "the CUDA backend"),
                      Catch::Contains("gemma3") && Catch::Contains("embedding scale"));
}

TEST_CASE("CUDA runs the Llama-shaped family files like transformers; the others are refused by name", "[cuda][families]") {
  VIREO_REQUIRE_GPU();
  for (const char* name : {"llama", "llama3"}) {
    INFO("family case " << name);
    const FamilyCase c = load_family(name);
    const Model m = Model::load(test::fixture(std::string("family/") + name + ".gguf"),
                                {.device = Device::cuda(), .dtype = DType::F32});
    const auto got = all_logits(m, c.ids);
    double err = 0;
    for (const auto& [pos, ref] : c.logits)
      for (std::size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::abs(double(got[std::size_t(pos)][i]) - ref[i]));
    // fp32 on the GPU (cuBLAS in CUBLAS_COMPUTE_32F, default math: no TF32), the same bound
    // as the CPU check with 10x headroom.
    CHECK(err < 1e-3);
  }
  for (const char* name : {"qwen2", "phi3", "mistral"}) {
    INFO(name);
    CHECK_THROWS_AS(Model::load(test::fixture(std::string("family/") + name + ".gguf"),
                                {.device = Device::cuda(), .dtype = DType::F32}),
                    Error);
  }
}

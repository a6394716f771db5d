// vireo::plan against what the CPU backend actually allocates: the weight bytes of the
// loaded SmolLM2 and of random models, and the KV pool's bytes measured as the growth of the
// allocator's count of bytes in use while the cache is built (within 5%). The lecture's KV
// example is checked against its own formula computed by hand, the device count by its
// definition.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <psapi.h>
#else
#include <unistd.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/plan.hpp"

namespace {

std::filesystem::path smollm2() {
  return std::filesystem::path(VIREO_SOURCE_DIR) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

/// Bytes the process holds from the allocator: glibc's own count (heap in use plus mmapped
/// blocks, mallinfo2) where there is one, the commit charge on Windows, else the
/// resident set (/proc/self/statm), which heap trimming elsewhere in the process can make
/// shrink while the pool is allocated.
std::uint64_t allocated_bytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 mi = mallinfo2();
  return std::uint64_t(mi.uordblks) + std::uint64_t(mi.hblkhd);
#elif defined(_WIN32)
  // PagefileUsage is the process's commit charge (its private committed bytes); wine fills it,
  // but not PrivateUsage.
  PROCESS_MEMORY_COUNTERS c{};
  c.cb = sizeof(c);
  REQUIRE(K32GetProcessMemoryInfo(GetCurrentProcess(), &c, sizeof(c)));
  return std::uint64_t(c.PagefileUsage);
#else
  std::ifstream f("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * std::uint64_t(sysconf(_SC_PAGESIZE));
#endif
}

bool within(double got, double want, double rel) { return std::abs(got - want) <= rel * want; }

}  // namespace

TEST_CASE("plan: SmolLM2's weights and KV on the CPU match what loading allocates", "[cpu][plan]") {
  const auto path = smollm2();
  if (!std::filesystem::exists(path)) FAIL("model missing: run scripts/fetch-model.sh");
  vireo::PlanOptions o;
  o.context = 1024;
  o.concurrency = 4;
  const vireo::MemoryPlan p = vireo::plan(path, o);
  const vireo::Model model = vireo::Model::load(path);
  const vireo::ModelConfig& c = model.config();
  CHECK(p.config.n_layers == c.n_layers);
  CHECK(p.config.n_kv_heads == c.n_kv_heads);
  CHECK(p.config.head_dim == c.head_dim);
  CHECK(p.config.vocab_size == c.vocab_size);
  INFO("planned weights " << p.weight_bytes << ", loaded " << model.weight_bytes());
  CHECK(within(double(p.weight_bytes), double(model.weight_bytes()), 0.05));
  CHECK(p.file_bytes == std::filesystem::file_size(path));

  for (auto precision : {vireo::KVPrecision::Model, vireo::KVPrecision::Int8}) {
    o.kv_precision = precision;
    const vireo::MemoryPlan q = vireo::plan(path, o);
    const std::int64_t blocks = std::int64_t(q.kv_bytes / (q.kv_bytes_per_token * std::uint64_t(o.block_size)));
    const std::uint64_t before = allocated_bytes();
    vireo::KVCache cache(model, {.num_blocks = blocks, .block_size = o.block_size, .precision = precision});
    const std::uint64_t grown = allocated_bytes() - before;
    INFO("precision " << int(precision) << ": planned KV " << q.kv_bytes << ", allocated " << grown);
    CHECK(cache.bytes_per_token() == q.kv_bytes_per_token);
    CHECK(cache.capacity_tokens() == 4 * 1024);
#if defined(__SANITIZE_ADDRESS__)
    (void)grown;  // ASan replaces the allocator and its counts; the plain build checks them
    CHECK(cache.stats().bytes_total == q.kv_bytes);
#else
    CHECK(within(double(grown), double(q.kv_bytes), 0.05));
#endif
  }
}

TEST_CASE("plan: random models' weights from their config", "[cpu][plan]") {
  vireo::ModelConfig c;
  c.n_layers = 3;
  c.d_model = 256;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 64;
  c.d_ff = 640;
  c.vocab_size = 1000;
  c.context_length = 512;
  for (auto type : {vireo::gguf::TensorType::F32, vireo::gguf::TensorType::F16, vireo::gguf::TensorType::Q4_0,
                    vireo::gguf::TensorType::Q8_0}) {
    for (bool tied : {true, false}) {
      c.tied_embeddings = tied;
      const vireo::Model m = vireo::Model::random(c, 7, {}, type);
      const vireo::MemoryPlan p = vireo::plan(c, type);
      INFO(vireo::gguf::to_string(type) << " tied " << tied << ": planned " << p.weight_bytes << ", model "
                                        << m.weight_bytes());
      CHECK(within(double(p.weight_bytes), double(m.weight_bytes()), 0.05));
    }
  }
}

TEST_CASE("plan: the lecture's KV example and the device count", "[plan]") {
  // The lecture: 2 * batch 16 * seq_len 1000 * 48 layers * 25 heads * head_dim 64 * 2 bytes.
  vireo::ModelConfig gpt2xl;
  gpt2xl.n_layers = 48;
  gpt2xl.d_model = 1600;
  gpt2xl.n_heads = 25;
  gpt2xl.n_kv_heads = 25;
  gpt2xl.head_dim = 64;
  gpt2xl.d_ff = 6400;
  gpt2xl.vocab_size = 50257;
  gpt2xl.context_length = 1024;
  vireo::PlanOptions o;
  o.device = vireo::DeviceKind::CUDA;
  o.dtype = vireo::DType::F16;
  o.context = 1000;
  o.concurrency = 16;
  o.block_size = 8;  // 1000 tokens are whole blocks, as the formula assumes
  vireo::MemoryPlan p = vireo::plan(gpt2xl, vireo::gguf::TensorType::F16, o);
  CHECK(p.kv_bytes_per_token == 2ull * 48 * 25 * 64 * 2);
  CHECK(p.kv_bytes == 4915200000ull);
  CHECK(p.fits);
  CHECK(p.devices_needed == 1);

  // GQA: 5 KV heads store a fifth; int8 rows are head_dim + 4 bytes.
  gpt2xl.n_kv_heads = 5;
  CHECK(vireo::plan(gpt2xl, vireo::gguf::TensorType::F16, o).kv_bytes == 4915200000ull / 5);
  o.kv_precision = vireo::KVPrecision::Int8;
  CHECK(vireo::plan(gpt2xl, vireo::gguf::TensorType::F16, o).kv_bytes_per_token == 2ull * 48 * 5 * (64 + 4));

  // A 70B-class shape in bf16 on 80 GiB GPUs: the count is the smallest n that holds the
  // weights and KV split n ways next to each device's own workspace and reserve.
  vireo::ModelConfig big;
  big.n_layers = 80;
  big.d_model = 8192;
  big.n_heads = 64;
  big.n_kv_heads = 8;
  big.head_dim = 128;
  big.d_ff = 28672;
  big.vocab_size = 128256;
  big.context_length = 131072;
  vireo::PlanOptions b;
  b.device = vireo::DeviceKind::CUDA;
  b.context = 8192;
  b.concurrency = 32;
  p = vireo::plan(big, vireo::gguf::TensorType::BF16, b);
  CHECK(!p.fits);
  const std::uint64_t mem = 80ull << 30, per = p.workspace_bytes + p.reserve_bytes;
  const std::uint64_t shared = p.weight_bytes + p.kv_bytes;
  const auto n = std::uint64_t(p.devices_needed);
  REQUIRE(n >= 2);
  CHECK(shared <= n * (mem - per));
  CHECK(shared > (n - 1) * (mem - per));
  // The budget: with one device's memory, the longest context for 32 sequences is what the
  // blocks left after the weights hold (0 here: the weights alone exceed 80 GiB).
  CHECK(p.budget_kv_tokens == 0);
  b.memory_budget_bytes = 400ull << 30;
  p = vireo::plan(big, vireo::gguf::TensorType::BF16, b);
  const std::uint64_t left = b.memory_budget_bytes - p.weight_bytes - p.workspace_bytes - p.reserve_bytes;
  CHECK(std::uint64_t(p.budget_kv_tokens) * p.kv_bytes_per_token <= left);
  CHECK(std::uint64_t(p.budget_kv_tokens + 16) * p.kv_bytes_per_token > left);
  CHECK(p.budget_max_concurrency == p.budget_kv_tokens / 8192);
}

TEST_CASE("plan: bad input is refused with a clear error", "[cpu][plan]") {
  vireo::PlanOptions o;
  o.block_size = 0;
  CHECK_THROWS_AS(vireo::plan(smollm2(), o), vireo::Error);
  o = {};
  o.concurrency = 0;
  CHECK_THROWS_AS(vireo::plan(smollm2(), o), vireo::Error);
  vireo::ModelConfig c;
  CHECK_THROWS_AS(vireo::plan(c, vireo::gguf::TensorType::F16), vireo::Error);  // zero sizes
  try {
    vireo::plan("/nonexistent/model.gguf");
    FAIL("no throw");
  } catch (const vireo::Error& e) {
    CHECK(e.code() == vireo::ErrorCode::Io);
  }
  const auto junk = std::filesystem::temp_directory_path() / "vireo_plan_junk.gguf";
  {
    std::ofstream f(junk, std::ios::binary);
    f << "GGUF but not really a model file at all, just text of some length";
  }
  CHECK_THROWS_AS(vireo::plan(junk), vireo::Error);
  std::filesystem::remove(junk);
}

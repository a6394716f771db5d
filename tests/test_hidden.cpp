// Logits::request_hidden: the final hidden state of each logits row is what the LM head
// multiplies (hidden . output row v == logit v), for every row that asked for logits.
#include <catch2/catch.hpp>

#include "model/model_impl.hpp"
#include "test_util.hpp"
#include "model/access.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

TEST_CASE("hidden states times the output matrix give the logits", "[cpu][hidden]") {
  for (bool tied : {true, false}) {
    ModelConfig cfg = test::model_shape(2, 64, 4, 2, 16, 96, 101, 512);
    cfg.tied_embeddings = tied;
    const Model m = Model::random(cfg, 11, {.n_threads = 2});
    KVCache c(m, {.num_blocks = 8});
    Batch b;
    b.add(c.add_sequence(), std::vector<Token>{3, 1, 4, 1, 5}, All);
    Logits lg;
    lg.request_hidden(true);
    m.forward(b, c, lg);
    REQUIRE(lg.rows() == 5);
    const detail::WeightView& out = vireo::detail::Access::model(m).net.output;
    std::vector<float> row(64);
    double err = 0;
    for (std::size_t r = 0; r < lg.rows(); ++r) {
      const auto h = lg.hidden_row(r);
      REQUIRE(h.size() == 64);
      for (int v = 0; v < cfg.vocab_size; ++v) {
        gguf::dequantize(out.type, out.row(v), row.data(), row.size());
        double dot = 0;
        for (int i = 0; i < 64; ++i) dot += double(h[std::size_t(i)]) * row[std::size_t(i)];
        err = std::max(err, std::abs(dot - double(lg.row(r)[std::size_t(v)])));
      }
    }
    INFO("tied " << tied);
    CHECK(err < 1e-4);
    // Not requested: no hidden rows.
    Logits plain;
    b.clear();
    b.add(c.sequences()[0], Token(2), true);
    m.forward(b, c, plain);
    CHECK(plain.hidden_row(0).empty());
  }
}

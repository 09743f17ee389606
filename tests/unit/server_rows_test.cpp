// Row-sparse pushes on a server shard under multi-precision: float16 and bfloat16 weights are
// updated through a float32 master that the server makes from the flat part it holds, and a
// lazy row update must still find row i of that master at i * row (issue 11 item 1).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/server_core.hpp"
#include "kvactor/kvstore.hpp"
#include "optimizers.hpp"

namespace kvactor::detail {
namespace {

struct answer {
  status st{errc::internal, "no answer"};
  tensor value;
};

server_request_ptr make(wire::msg kind, std::int64_t worker, dtype t, answer& out) {
  auto r = std::make_shared<server_request>();
  r->kind = kind;
  r->meta.key = wire::wire_key::from(key{"w"});
  r->meta.numel = 6;  // a 2 x 3 key held in one part
  r->meta.row = 3;
  r->meta.dtype = static_cast<std::uint8_t>(t);
  r->worker = worker;
  r->reply = [&out](const status& s, const tensor* v) {
    out.st = s;
    if (v) out.value = v->copy();
  };
  return r;
}

void init_ones(server_core& core, dtype t) {
  answer a;
  auto r = make(wire::msg::init, 0, t, a);
  r->payload = tensor::ones({6}, t);
  core.handle(r);
  ASSERT_TRUE(a.st.is_ok()) << a.st.to_string();
}

// Worker w pushes rows ids, each row filled with v.
server_request_ptr push_rows(std::int64_t w, dtype t, std::vector<std::int64_t> ids, double v,
                             answer& out) {
  auto r = make(wire::msg::push_rows, w, t, out);
  r->meta.rows = ids.size();
  r->row_data = tensor::full({static_cast<std::int64_t>(ids.size()), 3}, v, t);
  r->row_ids = std::move(ids);
  return r;
}

std::vector<double> pull(server_core& core, dtype t) {
  answer a;
  core.handle(make(wire::msg::pull, 0, t, a));
  EXPECT_TRUE(a.st.is_ok()) << a.st.to_string();
  EXPECT_EQ(a.value.dtype(), t);
  return a.value.defined() ? a.value.to_vector() : std::vector<double>{};
}

std::shared_ptr<const updater> sgd(double lr) {
  auto u = make_optimizer(sgd_config(lr));
  EXPECT_TRUE(u.has_value());
  return *u;
}

class ServerRowsMultiPrecision : public ::testing::TestWithParam<dtype> {};

// MXNet's answer to the example, with the round's row gradient split over two
// workers: w = ones(2, 3), row 1 gets 0.5 + 0.5, SGD with lr 1 and no wd: row 1 becomes
// 1 - 1 * 1 = 0; row 0, not pushed, stays 1 (lazy update).
TEST_P(ServerRowsMultiPrecision, RowPushUpdatesOnlyItsRowsThroughTheMaster) {
  const dtype t = GetParam();
  server_core core(2);
  core.set_updater(sgd(1.0));
  core.set_multi_precision(true);
  init_ones(core, t);
  answer a0, a1;
  core.handle(push_rows(0, t, {1}, 0.5, a0));
  core.handle(push_rows(1, t, {1}, 0.5, a1));
  ASSERT_TRUE(a0.st.is_ok()) << a0.st.to_string();
  ASSERT_TRUE(a1.st.is_ok()) << a1.st.to_string();
  EXPECT_EQ(pull(core, t), (std::vector<double>{1, 1, 1, 0, 0, 0}));
  // The master stays shaped like the part the server holds, so checkpoints are unchanged.
  const auto recs = core.snapshot_states();
  ASSERT_EQ(recs.size(), 1u);
  ASSERT_TRUE(recs[0].master.has_value());
  EXPECT_EQ(recs[0].master->dims, (std::vector<std::int64_t>{6}));
}

// A state restored from a checkpoint (a flat master, as saved) takes row pushes too, and the
// master carries values the low-precision weight cannot hold: 1 - 2^-12 rounds to 1 in both
// float16 and bfloat16, yet the master remembers it.
TEST_P(ServerRowsMultiPrecision, RestoredMasterTakesRowPushes) {
  const dtype t = GetParam();
  server_core first(1);
  first.set_updater(sgd(1.0 / 4096));
  first.set_multi_precision(true);
  init_ones(first, t);
  answer a;
  first.handle(push_rows(0, t, {0, 1}, 1.0, a));
  ASSERT_TRUE(a.st.is_ok()) << a.st.to_string();
  EXPECT_EQ(pull(first, t), (std::vector<double>{1, 1, 1, 1, 1, 1}));
  const auto saved = first.snapshot_states();
  ASSERT_EQ(saved.size(), 1u);
  ASSERT_TRUE(saved[0].master.has_value());

  server_core second(1);
  second.set_updater(sgd(1.0 / 4096));
  second.set_multi_precision(true);
  init_ones(second, t);
  ASSERT_TRUE(second.check_states(saved, second.effective_updater()).has_value());
  second.restore_states(saved);
  // Row 1 moves on from the restored master (1 - 2^-12) by 2^-12 * 255 to 1 - 2^-4, which
  // both types hold exactly; row 0 is not pushed and stays 1.
  answer b;
  second.handle(push_rows(0, t, {1}, 255.0, b));
  ASSERT_TRUE(b.st.is_ok()) << b.st.to_string();
  EXPECT_EQ(pull(second, t), (std::vector<double>{1, 1, 1, 0.9375, 0.9375, 0.9375}));
}

INSTANTIATE_TEST_SUITE_P(LowPrecision, ServerRowsMultiPrecision,
                         ::testing::Values(dtype::float16, dtype::bfloat16),
                         [](const auto& info) { return std::string{to_string(info.param)}; });

}  // namespace
}  // namespace kvactor::detail

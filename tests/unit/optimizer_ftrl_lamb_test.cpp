// ftrl and lamb against the double references of optimizer_reference.hpp, over several updates
// in every floating dtype; ftrl's range path and lazy rows; lamb's whole-tensor update.
#include "optimizer_checks.hpp"

namespace kvactor::optref {
namespace {

params common(double lr) {
  return {{"learning_rate", lr},  {"wd", 0.05},       {"rescale_grad", 0.7},
          {"clip_gradient", 0.9}, {"lr_mult.7", 0.5}, {"wd_mult.7", 2.0}};
}
params with(params p, std::initializer_list<std::pair<const std::string, double>> more) {
  for (const auto& kv : more)
    p[kv.first] = kv.second;
  return p;
}

opt_case ftrl() {
  const auto p = with(common(0.2), {{"lamda1", 0.05}, {"beta", 0.5}});
  return {"ftrl", "ftrl", p, ftrl_ref(p), 2};
}
opt_case lamb() {
  const auto p = with(common(0.01), {{"beta1", 0.8}, {"beta2", 0.95}, {"epsilon", 1e-5}});
  return {"lamb", "lamb", p, lamb_ref(p), 2};
}
opt_case lamb_bounded() {
  // ||w|| of 129 values in [-1, 1] is about 6.5: the upper bound caps the trust ratio.
  const auto p = with(common(0.01), {{"lower_bound", 0.5}, {"upper_bound", 2.0}});
  return {"lamb bounded", "lamb", p, lamb_ref(p), 2};
}
opt_case lamb_no_correction() {
  const auto p = with(common(0.01), {{"bias_correction", 0}, {"lower_bound", 10}});
  return {"lamb without bias correction, lower bound", "lamb", p, lamb_ref(p), 2};
}

TEST(OptimizerFtrl, MatchesTheReference) {
  check_all(ftrl());
}
TEST(OptimizerLamb, MatchesTheReference) {
  check_all(lamb());
}
TEST(OptimizerLamb, BoundsMatchTheReference) {
  check_all(lamb_bounded());
}
TEST(OptimizerLamb, WithoutBiasCorrectionMatchesTheReference) {
  check_all(lamb_no_correction());
}

TEST(OptimizerFtrl, RangesAreBitIdenticalToUpdate) {
  for (dtype t : {dtype::float32, dtype::float64, dtype::float16, dtype::bfloat16})
    check_ranges(ftrl(), t);
}

TEST(OptimizerFtrl, LazyRows) {
  // With a zero gradient the dense update keeps z and n and recomputes the weight from them:
  // under a constant learning rate that is the weight it already has, so both agree there.
  check_lazy_rows(ftrl(), true);
}

TEST(OptimizerFtrl, LazyRowsKeepOtherRowsWhenTheRateChanges) {
  // A changing learning rate makes the dense update move zero-gradient rows; lazy rows stay.
  auto u = make({"ftrl",
                 {{"learning_rate", 0.5},
                  {"lr_scheduler", 1},
                  {"lr_scheduler.step", 1},
                  {"lr_scheduler.factor", 0.5}}});
  tensor lazy = tensor::full({2, 3}, 0.25), dense = lazy.copy();
  auto sl = u->make_state(1, lazy), sd = u->make_state(1, dense);
  u->update(1, tensor::full({2, 3}, 1.0), lazy, sl.get());  // z, n non-zero everywhere
  u->update(1, tensor::full({2, 3}, 1.0), dense, sd.get());
  const auto before = values(lazy);
  const std::int64_t rows[] = {1};
  u->update_rows(1, rows, 1, tensor::full({1, 3}, -1.0), lazy, sl.get());
  std::vector<double> g{0, 0, 0, -1, -1, -1};
  u->update(1, make_tensor(g, shape{2, 3}, dtype::float32), dense, sd.get());
  const auto l = values(lazy), d = values(dense);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(l[i], before[i]);
    EXPECT_NE(d[i], before[i]);
    EXPECT_EQ(l[3 + i], d[3 + i]);
  }
}

TEST(OptimizerLamb, IsNotElementWise) {
  auto u = make(lamb().config());
  EXPECT_FALSE(u->element_wise());
  EXPECT_FALSE(u->lazy_rows());
}

TEST(OptimizerLamb, ZeroWeightKeepsTheLearningRate) {
  // r1 = ||w|| = 0: MXNet uses lr unscaled. One update of a zero weight, wd 0, no correction:
  // mean = 0.1 g, var = 0.001 g^2, step = lr * mean / (sqrt(var) + eps) = lr * sign(g) * 3.162...
  auto u = make({"lamb", {{"learning_rate", 0.5}, {"bias_correction", 0}, {"epsilon", 0}}});
  tensor w = tensor::zeros({4});
  auto st = u->make_state(1, w);
  u->update(1, tensor::full({4}, 2.0), w, st.get());
  const double want = -0.5 * 0.1 * 2.0 / std::sqrt(static_cast<double>(1.0f - 0.999f) * 4.0);
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_NEAR(w.at(i), want, 1e-5);
}

}  // namespace
}  // namespace kvactor::optref

// sgd, nag and signum against the double references of optimizer_reference.hpp, over several
// updates in every floating dtype; the range path; lazy row updates.
#include "optimizer_checks.hpp"

namespace kvactor::optref {
namespace {

// Non-trivial hyper-parameters: wd != 0, rescale != 1, clipping active on part of the
// elements (|rescale * grad| reaches 1.4 > 0.9), per-key multipliers on key 7.
params common(double lr) {
  return {{"learning_rate", lr},  {"wd", 0.05},       {"rescale_grad", 0.7},
          {"clip_gradient", 0.9}, {"lr_mult.7", 0.5}, {"wd_mult.7", 2.0}};
}
params with(params p, std::initializer_list<std::pair<const std::string, double>> more) {
  for (const auto& kv : more)
    p[kv.first] = kv.second;
  return p;
}

opt_case sgd_plain() {
  return {"sgd", "sgd", common(0.1), sgd_ref(common(0.1)), 0};
}
opt_case sgd_momentum() {
  const auto p = with(common(0.1), {{"momentum", 0.9}});
  return {"sgd momentum", "sgd", p, sgd_ref(p), 1};
}
opt_case sgd_noclip() {
  const params p{{"learning_rate", 0.05}, {"momentum", 0.5}, {"wd", 0.01}, {"rescale_grad", 2}};
  return {"sgd momentum, no clipping", "sgd", p, sgd_ref(p), 1};
}
opt_case nag_momentum() {
  const auto p = with(common(0.1), {{"momentum", 0.9}});
  return {"nag", "nag", p, nag_ref(p), 1};
}
opt_case nag_plain() {
  return {"nag momentum 0", "nag", common(0.1), nag_ref(common(0.1)), 0};
}
opt_case signum_momentum() {
  const auto p = with(common(0.01), {{"momentum", 0.8}, {"wd_lh", 0.02}});
  return {"signum", "signum", p, signum_ref(p), 1};
}
opt_case signsgd() {
  const auto p = with(common(0.01), {{"momentum", 0.0}});
  return {"signum momentum 0 (signSGD)", "signum", p, signum_ref(p), 0};
}

TEST(OptimizerSgd, MatchesTheReference) {
  check_all(sgd_plain());
}
TEST(OptimizerSgd, MomentumMatchesTheReference) {
  check_all(sgd_momentum());
}
TEST(OptimizerSgd, MomentumWithoutClippingMatchesTheReference) {
  check_all(sgd_noclip());
}
TEST(OptimizerNag, MatchesTheReference) {
  check_all(nag_momentum());
}
TEST(OptimizerNag, WithoutMomentumIsSgd) {
  check_all(nag_plain());
}
TEST(OptimizerSignum, MatchesTheReference) {
  check_all(signum_momentum());
}
TEST(OptimizerSignum, WithoutMomentumIsSignSgd) {
  check_all(signsgd());
}

TEST(OptimizerSgd, RangesAreBitIdenticalToUpdate) {
  for (const auto& c : {sgd_plain(), sgd_momentum(), sgd_noclip(), nag_momentum(), nag_plain(),
                        signum_momentum(), signsgd()})
    for (dtype t : {dtype::float32, dtype::float64, dtype::float16, dtype::bfloat16})
      check_ranges(c, t);
}

TEST(OptimizerSgd, LazyRows) {
  // Without momentum and wd the dense update leaves zero-gradient rows alone too.
  const params plain{{"learning_rate", 0.1}, {"rescale_grad", 0.7}, {"clip_gradient", 0.9}};
  check_lazy_rows({"sgd lazy, wd 0", "sgd", plain, sgd_ref(plain), 0}, true);
  check_lazy_rows(sgd_plain(), false);     // wd decays every row in the dense update
  check_lazy_rows(sgd_momentum(), false);  // momentum moves every row in the dense update
}

TEST(OptimizerSgd, LazyUpdateZeroMeansDense) {
  auto u = make({"sgd", {{"momentum", 0.9}, {"lazy_update", 0}}});
  EXPECT_FALSE(u->lazy_rows());
  EXPECT_TRUE(make({"sgd", {}})->lazy_rows());
  EXPECT_FALSE(make({"nag", {{"momentum", 0.9}}})->lazy_rows());
  EXPECT_FALSE(make({"signum", {}})->lazy_rows());
}

}  // namespace
}  // namespace kvactor::optref

// adam, adagrad, rmsprop (plain and centered) and adadelta against the double references of
// optimizer_reference.hpp, over several updates in every floating dtype; the range path; lazy
// row updates.
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

opt_case adam() {
  const auto p = with(common(0.01), {{"beta1", 0.8}, {"beta2", 0.95}, {"epsilon", 1e-6}});
  return {"adam", "adam", p, adam_ref(p), 2};
}
opt_case adagrad() {
  const auto p = with(common(0.1), {{"eps", 1e-6}});
  return {"adagrad", "adagrad", p, adagrad_ref(p), 1};
}
opt_case rmsprop() {
  const auto p = with(common(0.01), {{"gamma1", 0.8}, {"epsilon", 1e-6}, {"clip_weights", 0.95}});
  return {"rmsprop", "rmsprop", p, rmsprop_ref(p), 1};
}
opt_case rmsprop_centered() {
  const auto p = with(common(0.01), {{"gamma1", 0.8},
                                     {"gamma2", 0.7},
                                     {"epsilon", 1e-4},
                                     {"centered", 1},
                                     {"clip_weights", 0.95}});
  return {"rmsprop centered", "rmsprop", p, rmsprop_ref(p), 3};
}
opt_case adadelta() {
  const auto p = with(common(1.0), {{"rho", 0.8}, {"epsilon", 1e-4}});
  return {"adadelta", "adadelta", p, adadelta_ref(p), 2};
}

TEST(OptimizerAdam, MatchesTheReference) {
  check_all(adam());
}
TEST(OptimizerAdagrad, MatchesTheReference) {
  check_all(adagrad());
}
TEST(OptimizerRmsprop, MatchesTheReference) {
  check_all(rmsprop());
}
TEST(OptimizerRmsprop, CenteredMatchesTheReference) {
  check_all(rmsprop_centered());
}
TEST(OptimizerAdadelta, MatchesTheReference) {
  check_all(adadelta());
}

TEST(OptimizerAdaptive, RangesAreBitIdenticalToUpdate) {
  for (const auto& c : {adam(), adagrad(), rmsprop(), rmsprop_centered(), adadelta()})
    for (dtype t : {dtype::float32, dtype::float64, dtype::float16, dtype::bfloat16})
      check_ranges(c, t);
}

TEST(OptimizerAdam, LazyRows) {
  check_lazy_rows(adam(), false);  // the dense update moves mean, var and weight everywhere
  EXPECT_FALSE(make({"adam", {{"lazy_update", 0}}})->lazy_rows());
}

TEST(OptimizerAdagrad, LazyRows) {
  // With wd = 0 a zero-gradient row keeps its weight and history in the dense update too.
  const params p{{"learning_rate", 0.1}, {"rescale_grad", 0.7}, {"clip_gradient", 0.9}};
  check_lazy_rows({"adagrad wd 0", "adagrad", p, adagrad_ref(p), 1}, true);
  check_lazy_rows(adagrad(), false);  // wd != 0: only the given rows decay
}

TEST(OptimizerAdaptive, OthersHaveNoLazyRows) {
  for (const char* type : {"rmsprop", "adadelta", "lamb"}) {
    auto u = make({type, {}});
    EXPECT_FALSE(u->lazy_rows()) << type;
    tensor w = tensor::zeros({2, 2});
    auto st = u->make_state(1, w);
    const std::int64_t rows[] = {0};
    try {
      u->update_rows(1, rows, 1, tensor::ones({1, 2}), w, st.get());
      ADD_FAILURE() << type << " accepted a row update";
    } catch (const error& e) {
      EXPECT_EQ(e.code(), errc::unsupported) << type;
    }
  }
}

}  // namespace
}  // namespace kvactor::optref

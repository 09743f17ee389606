// The optimizer registry: config validation (typed errors naming the parameter), MXNet's
// defaults, learning-rate schedules against MXNet's stateful schedulers (reference), per-key
// multipliers, update counts and state slots.
#include <initializer_list>

#include "optimizer_reference.hpp"

namespace kvactor::optref {
namespace {

const char* const all_types[] = {"sgd",     "nag",      "signum", "adam", "adagrad",
                                 "rmsprop", "adadelta", "ftrl",   "lamb"};

::testing::AssertionResult rejected(const optimizer_config& cfg, const std::string& needle) {
  auto r = detail::make_optimizer(cfg);
  if (r) return ::testing::AssertionFailure() << "accepted";
  if (r.error().code() != errc::invalid_argument)
    return ::testing::AssertionFailure() << "code " << to_string(r.error().code());
  if (r.error().message().find(needle) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message \"" << r.error().message() << "\" does not name " << needle;
  return ::testing::AssertionSuccess();
}

TEST(OptimizerConfig, UnknownTypeIsInvalid) {
  EXPECT_TRUE(rejected({"adamw2000", {}}, "adamw2000"));
  EXPECT_TRUE(rejected({"", {}}, "unknown optimizer type"));
}

TEST(OptimizerConfig, EveryTypeBuildsWithDefaultsAndCaseInsensitively) {
  for (const char* t : all_types) {
    EXPECT_TRUE(detail::make_optimizer({t, {}})) << t;
    std::string upper = t;
    for (auto& ch : upper)
      ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    EXPECT_TRUE(detail::make_optimizer({upper, {}})) << upper;
  }
}

TEST(OptimizerConfig, UnknownParametersAreNamed) {
  for (const char* t : all_types) {
    SCOPED_TRACE(t);
    EXPECT_TRUE(rejected({t, {{"bta1", 0.9}}}, "bta1"));
    EXPECT_TRUE(rejected({t, {{"learning_rat", 0.1}}}, "learning_rat"));
  }
  // Another optimizer's parameter is unknown too.
  EXPECT_TRUE(rejected({"sgd", {{"beta1", 0.9}}}, "beta1"));
  EXPECT_TRUE(rejected({"adam", {{"momentum", 0.9}}}, "momentum"));
  EXPECT_TRUE(rejected({"nag", {{"lazy_update", 1}}}, "lazy_update"));
  EXPECT_TRUE(rejected({"ftrl", {{"lambda1", 0.1}}}, "lambda1"));  // MXNet spells it lamda1
  EXPECT_TRUE(rejected({"lr_mult.", {}}, "lr_mult."));
  EXPECT_TRUE(rejected({"sgd", {{"lr_mult.", 1}}}, "lr_mult."));
}

TEST(OptimizerConfig, OutOfRangeValuesAreNamed) {
  const double nan = std::nan("");
  const std::pair<optimizer_config, const char*> bad[] = {
      {{"sgd", {{"learning_rate", -0.1}}}, "learning_rate"},
      {{"sgd", {{"lr", -0.1}}}, "lr"},
      {{"sgd", {{"learning_rate", nan}}}, "learning_rate"},
      {{"sgd", {{"wd", -1}}}, "wd"},
      {{"sgd", {{"rescale_grad", INFINITY}}}, "rescale_grad"},
      {{"sgd", {{"clip_gradient", nan}}}, "clip_gradient"},
      {{"sgd", {{"momentum", 1.0}}}, "momentum"},
      {{"sgd", {{"momentum", -0.1}}}, "momentum"},
      {{"sgd", {{"lazy_update", 2}}}, "lazy_update"},
      {{"nag", {{"momentum", 1.5}}}, "momentum"},
      {{"signum", {{"wd_lh", -1}}}, "wd_lh"},
      {{"adam", {{"beta1", 1.0}}}, "beta1"},
      {{"adam", {{"beta2", -0.5}}}, "beta2"},
      {{"adam", {{"epsilon", -1e-8}}}, "epsilon"},
      {{"adam", {{"lazy_update", 0.5}}}, "lazy_update"},
      {{"adagrad", {{"eps", -1}}}, "eps"},
      {{"adagrad", {{"eps", 1e-7}, {"epsilon", 1e-6}}}, "epsilon"},
      {{"rmsprop", {{"gamma1", 1}}}, "gamma1"},
      {{"rmsprop", {{"gamma2", 2}}}, "gamma2"},
      {{"rmsprop", {{"centered", 3}}}, "centered"},
      {{"rmsprop", {{"clip_weights", nan}}}, "clip_weights"},
      {{"adadelta", {{"rho", 1}}}, "rho"},
      {{"adadelta", {{"epsilon", -1}}}, "epsilon"},
      {{"ftrl", {{"learning_rate", 0}}}, "learning_rate"},
      {{"ftrl", {{"lamda1", -1}}}, "lamda1"},
      {{"ftrl", {{"beta", -1}}}, "beta"},
      {{"lamb", {{"beta1", 1}}}, "beta1"},
      {{"lamb", {{"bias_correction", 2}}}, "bias_correction"},
      {{"lamb", {{"lower_bound", nan}}}, "lower_bound"},
      {{"sgd", {{"learning_rate", 0.1}, {"lr", 0.2}}}, "lr"},
      {{"sgd", {{"lr_mult.3", -1}}}, "lr_mult.3"},
      {{"sgd", {{"wd_mult.w", nan}}}, "wd_mult.w"},
  };
  for (const auto& [cfg, name] : bad)
    EXPECT_TRUE(rejected(cfg, name)) << cfg.type << " " << name;
  // Agreeing aliases are fine.
  EXPECT_TRUE(detail::make_optimizer({"sgd", {{"learning_rate", 0.1}, {"lr", 0.1}}}));
  EXPECT_TRUE(detail::make_optimizer({"adagrad", {{"eps", 1e-6}, {"epsilon", 1e-6}}}));
  EXPECT_TRUE(detail::make_optimizer({"adagrad", {{"epsilon", 1e-6}}}));
}

TEST(OptimizerConfig, SchedulerParametersAreChecked) {
  const std::pair<std::map<std::string, double>, const char*> bad[] = {
      {{{"lr_scheduler", 5}}, "lr_scheduler"},
      {{{"lr_scheduler", 1.5}}, "lr_scheduler"},
      {{{"lr_scheduler.step", 10}}, "lr_scheduler.step"},  // no scheduler chosen
      {{{"lr_scheduler", 1}}, "lr_scheduler.step"},        // required
      {{{"lr_scheduler", 1}, {"lr_scheduler.step", 0}}, "lr_scheduler.step"},
      {{{"lr_scheduler", 1}, {"lr_scheduler.step", 2.5}}, "lr_scheduler.step"},
      {{{"lr_scheduler", 1}, {"lr_scheduler.step", 2}, {"lr_scheduler.factor", 1.5}},
       "lr_scheduler.factor"},
      {{{"lr_scheduler", 1}, {"lr_scheduler.step", 2}, {"lr_scheduler.stop_factor_lr", -1}},
       "lr_scheduler.stop_factor_lr"},
      {{{"lr_scheduler", 1}, {"lr_scheduler.step", 2}, {"lr_scheduler.max_update", 9}},
       "lr_scheduler.max_update"},  // a parameter of another scheduler
      {{{"lr_scheduler", 2}}, "lr_scheduler.step.0"},
      {{{"lr_scheduler", 2}, {"lr_scheduler.step.0", 5}, {"lr_scheduler.step.1", 5}},
       "lr_scheduler.step.1"},
      {{{"lr_scheduler", 2}, {"lr_scheduler.step.0", 5}, {"lr_scheduler.step.2", 9}},
       "lr_scheduler.step.2"},  // a gap
      {{{"lr_scheduler", 2}, {"lr_scheduler.step", 5}}, "lr_scheduler.step"},
      {{{"lr_scheduler", 3}}, "lr_scheduler.max_update"},
      {{{"lr_scheduler", 3}, {"lr_scheduler.max_update", 0}}, "lr_scheduler.max_update"},
      {{{"lr_scheduler", 4}, {"lr_scheduler.max_update", 5}, {"lr_scheduler.warmup_steps", 5}},
       "lr_scheduler.max_update"},
      {{{"lr_scheduler", 4}, {"lr_scheduler.max_update", 5}, {"lr_scheduler.pwr", 1}},
       "lr_scheduler.pwr"},  // poly only
      {{{"lr_scheduler", 3}, {"lr_scheduler.max_update", 5}, {"lr_scheduler.warmup_mode", 2}},
       "lr_scheduler.warmup_mode"},
      {{{"lr_scheduler", 3}, {"lr_scheduler.max_update", 5}, {"lr_scheduler.warmup_begin_lr", 1}},
       "lr_scheduler.warmup_begin_lr"},  // above learning_rate
      {{{"lr_scheduler", 3}, {"lr_scheduler.max_update", 5}, {"lr_scheduler.bogus", 1}},
       "lr_scheduler.bogus"},
  };
  for (const auto& [p, name] : bad) {
    std::map<std::string, double> params = p;
    params["learning_rate"] = 0.1;
    EXPECT_TRUE(rejected({"sgd", params}, name)) << name;
  }
}

// ---- defaults: an empty config updates exactly like one spelling out MXNet's defaults ----

void expect_same_updates(const optimizer_config& a, const optimizer_config& b) {
  SCOPED_TRACE(a.type);
  auto ua = make(a), ub = make(b);
  std::mt19937_64 rng(3);
  const shape s{33};
  tensor wa = make_tensor(uniform(rng, 33, -1, 1), s, dtype::float32), wb = wa.copy();
  auto sa = ua->make_state(1, wa), sb = ub->make_state(1, wb);
  EXPECT_EQ(state_of(sa).slots.size(), state_of(sb).slots.size());
  for (int step = 0; step < 4; ++step) {
    const tensor g = make_tensor(uniform(rng, 33, -3, 3), s, dtype::float32);
    ua->update(1, g, wa, sa.get());
    ub->update(1, g, wb, sb.get());
    ASSERT_TRUE(same_bits(wa, wb)) << "step " << step;
  }
}

TEST(OptimizerConfig, DefaultsAreMxnets) {
  const std::map<std::string, double> base{{"wd", 0}, {"rescale_grad", 1}};
  auto cfg = [&](const char* t, std::map<std::string, double> p) {
    for (const auto& kv : base)
      p.insert(kv);
    return optimizer_config{t, p};
  };
  expect_same_updates({"sgd", {}}, cfg("sgd", {{"learning_rate", 0.01}, {"momentum", 0}}));
  expect_same_updates({"nag", {}}, cfg("nag", {{"learning_rate", 0.01}, {"momentum", 0}}));
  expect_same_updates({"signum", {}},
                      cfg("signum", {{"learning_rate", 0.01}, {"momentum", 0.9}, {"wd_lh", 0}}));
  expect_same_updates(
      {"adam", {}},
      cfg("adam", {{"learning_rate", 0.001}, {"beta1", 0.9}, {"beta2", 0.999}, {"epsilon", 1e-8}}));
  expect_same_updates({"adagrad", {}}, cfg("adagrad", {{"learning_rate", 0.01}, {"eps", 1e-7}}));
  expect_same_updates({"rmsprop", {}}, cfg("rmsprop", {{"learning_rate", 0.001},
                                                       {"gamma1", 0.9},
                                                       {"gamma2", 0.9},
                                                       {"epsilon", 1e-8},
                                                       {"centered", 0}}));
  expect_same_updates({"adadelta", {}}, cfg("adadelta", {{"rho", 0.9}, {"epsilon", 1e-5}}));
  expect_same_updates({"ftrl", {}},
                      cfg("ftrl", {{"learning_rate", 0.1}, {"lamda1", 0.01}, {"beta", 1}}));
  expect_same_updates({"lamb", {}}, cfg("lamb", {{"learning_rate", 0.001},
                                                 {"beta1", 0.9},
                                                 {"beta2", 0.999},
                                                 {"epsilon", 1e-6},
                                                 {"bias_correction", 1}}));
  // clip_gradient <= 0 and clip_weights <= 0 switch clipping off, as MXNet's Python does.
  expect_same_updates({"sgd", {{"clip_gradient", 0}}}, {"sgd", {}});
  expect_same_updates({"sgd", {{"clip_gradient", -3}}}, {"sgd", {}});
  expect_same_updates({"rmsprop", {{"clip_weights", 0}}}, {"rmsprop", {}});
  // The learning_rate alias.
  expect_same_updates({"sgd", {{"lr", 0.3}}}, {"sgd", {{"learning_rate", 0.3}}});
}

TEST(OptimizerConfig, AdadeltaIgnoresTheLearningRate) {
  expect_same_updates({"adadelta", {{"learning_rate", 5}}}, {"adadelta", {}});
}

// ---- state and counts ----

TEST(OptimizerState, SlotsPerTypeAndDtype) {
  const std::pair<optimizer_config, std::size_t> cases[] = {
      {{"sgd", {}}, 0},      {{"sgd", {{"momentum", 0.9}}}, 1},
      {{"nag", {}}, 0},      {{"nag", {{"momentum", 0.9}}}, 1},
      {{"signum", {}}, 1},   {{"signum", {{"momentum", 0}}}, 0},
      {{"adam", {}}, 2},     {{"adagrad", {}}, 1},
      {{"rmsprop", {}}, 1},  {{"rmsprop", {{"centered", 1}}}, 3},
      {{"adadelta", {}}, 2}, {{"ftrl", {}}, 2},
      {{"lamb", {}}, 2},
  };
  for (const auto& [cfg, slots] : cases) {
    auto u = make(cfg);
    for (dtype t : {dtype::float32, dtype::float64, dtype::float16, dtype::bfloat16}) {
      const tensor w = tensor::ones({3, 4}, t);
      auto st = u->make_state(1, w);
      const optimizer_state& s = state_of(st);
      EXPECT_EQ(s.count, 0u);
      ASSERT_EQ(s.slots.size(), slots) << cfg.type;
      for (const auto& slot : s.slots) {
        EXPECT_EQ(slot.shape(), w.shape());
        EXPECT_EQ(slot.dtype(), t == dtype::float64 ? dtype::float64 : dtype::float32);
        for (std::size_t i = 0; i < slot.size(); ++i)
          EXPECT_EQ(slot.at(i), 0.0);
      }
    }
  }
}

TEST(OptimizerState, IntegerWeightsAreUnsupported) {
  for (const char* t : all_types) {
    auto u = make({t, {}});
    try {
      u->make_state(1, tensor::zeros({2}, dtype::int32));
      ADD_FAILURE() << t;
    } catch (const error& e) {
      EXPECT_EQ(e.code(), errc::unsupported) << t;
    }
  }
}

TEST(OptimizerState, CountsOneUpdateWhicheverPathRuns) {
  auto u = make({"adam", {}});
  tensor w = tensor::ones({10});
  const tensor g = tensor::ones({10});
  auto st = u->make_state(1, w);
  u->update(1, g, w, st.get());
  EXPECT_EQ(state_of(st).count, 1u);
  u->begin_update(1, st.get());
  EXPECT_EQ(state_of(st).count, 2u);
  u->update_range(1, g, w, st.get(), 0, 5);
  u->update_range(1, g, w, st.get(), 5, 10);
  EXPECT_EQ(state_of(st).count, 2u);
  const std::int64_t rows[] = {3};
  u->update_rows(1, rows, 1, tensor::ones({1}), w, st.get());
  EXPECT_EQ(state_of(st).count, 3u);
}

TEST(OptimizerState, MismatchedStatesAndGradientsAreRejected) {
  auto u = make({"adam", {}});
  tensor w = tensor::ones({4});
  auto wrong = make({"sgd", {}})->make_state(1, w);  // no slots
  auto expect_code = [](errc want, const std::function<void()>& f) {
    try {
      f();
      ADD_FAILURE() << "accepted";
    } catch (const error& e) {
      EXPECT_EQ(e.code(), want) << e.what();
    }
  };
  expect_code(errc::invalid_argument, [&] { u->update(1, tensor::ones({4}), w, wrong.get()); });
  expect_code(errc::invalid_argument, [&] { u->begin_update(1, wrong.get()); });
  expect_code(errc::invalid_argument, [&] { u->update(1, tensor::ones({4}), w, nullptr); });
  auto st = u->make_state(1, w);
  expect_code(errc::shape_mismatch, [&] { u->update(1, tensor::ones({5}), w, st.get()); });
  expect_code(errc::dtype_mismatch,
              [&] { u->update(1, tensor::ones({4}, dtype::float64), w, st.get()); });
  tensor w64 = tensor::ones({4}, dtype::float64);
  expect_code(errc::dtype_mismatch,
              [&] { u->update(1, tensor::ones({4}, dtype::float64), w64, st.get()); });
  EXPECT_EQ(state_of(st).count, 0u);  // nothing counted
  // Row updates: rows out of range or unsorted change nothing.
  tensor m = tensor::ones({4, 2});
  auto ms = u->make_state(1, m);
  const std::int64_t bad_rows[] = {1, 4};
  const std::int64_t unsorted[] = {2, 1};
  expect_code(errc::out_of_range, [&] {
    u->update_rows(1, bad_rows, 2, tensor::ones({2, 2}), m, ms.get());
  });
  expect_code(errc::invalid_argument, [&] {
    u->update_rows(1, unsorted, 2, tensor::ones({2, 2}), m, ms.get());
  });
  expect_code(errc::shape_mismatch, [&] {
    u->update_rows(1, bad_rows, 1, tensor::ones({2, 2}), m, ms.get());
  });
  EXPECT_EQ(state_of(ms).count, 0u);
  for (std::size_t i = 0; i < m.size(); ++i)
    EXPECT_EQ(m.at(i), 1.0);
}

// ---- learning-rate schedules: the rate each update used, against MXNet's schedulers ----

// SGD on a float64 weight with gradient 1 and no wd: each update subtracts exactly the float
// learning rate it used.
std::vector<double> rates_used(const optimizer_config& cfg, const key& k, int updates) {
  auto u = make(cfg);
  tensor w = tensor::zeros({1}, dtype::float64);
  const tensor g = tensor::ones({1}, dtype::float64);
  auto st = u->make_state(k, w);
  std::vector<double> out;
  double before = 0;
  for (int i = 0; i < updates; ++i) {
    u->update(k, g, w, st.get());
    out.push_back(before - w.at(0));
    before = w.at(0);
  }
  return out;
}

void expect_schedule(const std::map<std::string, double>& p, ref_scheduler& ref, int updates,
                     double mult = 1.0, const key& k = key{1}) {
  const auto got = rates_used({"sgd", p}, k, updates);
  for (int n = 1; n <= updates; ++n) {
    const double want = hp(ref(static_cast<std::uint64_t>(n)) * mult);
    ASSERT_NEAR(got[n - 1], want, 1e-12 + 1e-9 * want) << "update " << n;
  }
}

TEST(LrScheduler, None) {
  ref_factor never(0.3, 1000000, 1.0, 0, {});
  expect_schedule({{"learning_rate", 0.3}}, never, 10);
}

TEST(LrScheduler, Factor) {
  ref_factor ref(0.5, 3, 0.5, 1e-2, {});
  expect_schedule({{"learning_rate", 0.5},
                   {"lr_scheduler", 1},
                   {"lr_scheduler.step", 3},
                   {"lr_scheduler.factor", 0.5},
                   {"lr_scheduler.stop_factor_lr", 1e-2}},
                  ref, 30);  // reaches the stop rate
}

TEST(LrScheduler, FactorWithLinearWarmup) {
  ref_factor ref(0.4, 4, 0.9, 1e-8, {6, 0.1, false});
  expect_schedule({{"learning_rate", 0.4},
                   {"lr_scheduler", 1},
                   {"lr_scheduler.step", 4},
                   {"lr_scheduler.factor", 0.9},
                   {"lr_scheduler.warmup_steps", 6},
                   {"lr_scheduler.warmup_begin_lr", 0.1}},
                  ref, 25);
}

TEST(LrScheduler, MultiFactorWithConstantWarmup) {
  ref_multifactor ref(0.2, {5, 9, 14}, 0.3, {4, 0.05, true});
  expect_schedule({{"learning_rate", 0.2},
                   {"lr_scheduler", 2},
                   {"lr_scheduler.step.0", 5},
                   {"lr_scheduler.step.1", 9},
                   {"lr_scheduler.step.2", 14},
                   {"lr_scheduler.factor", 0.3},
                   {"lr_scheduler.warmup_steps", 4},
                   {"lr_scheduler.warmup_begin_lr", 0.05},
                   {"lr_scheduler.warmup_mode", 1}},
                  ref, 20);
}

TEST(LrScheduler, Poly) {
  ref_poly_cosine ref(false, 0.3, 12, 3.0, 0.01, {});
  expect_schedule({{"learning_rate", 0.3},
                   {"lr_scheduler", 3},
                   {"lr_scheduler.max_update", 12},
                   {"lr_scheduler.pwr", 3},
                   {"lr_scheduler.final_lr", 0.01}},
                  ref, 20);  // past max_update: stays at final_lr
}

TEST(LrScheduler, PolyWithWarmup) {
  ref_poly_cosine ref(false, 0.3, 15, 2.0, 0.0, {5, 0.0, false});
  expect_schedule({{"learning_rate", 0.3},
                   {"lr_scheduler", 3},
                   {"lr_scheduler.max_update", 15},
                   {"lr_scheduler.warmup_steps", 5}},
                  ref, 20);
}

TEST(LrScheduler, CosineWithWarmupAndLrMult) {
  ref_poly_cosine ref(true, 0.25, 16, 0, 0.02, {3, 0.01, false});
  expect_schedule({{"learning_rate", 0.25},
                   {"lr_scheduler", 4},
                   {"lr_scheduler.max_update", 16},
                   {"lr_scheduler.final_lr", 0.02},
                   {"lr_scheduler.warmup_steps", 3},
                   {"lr_scheduler.warmup_begin_lr", 0.01},
                   {"lr_mult.9", 0.5}},
                  ref, 22, 0.5, key{9});
}

TEST(LrScheduler, DrivesAdamsBiasCorrectionCountToo) {
  // Adam's step uses the schedule's rate at count t and the bias correction at the same t.
  const params p{{"learning_rate", 0.1},
                 {"lr_scheduler", 1},
                 {"lr_scheduler.step", 2},
                 {"lr_scheduler.factor", 0.5}};
  auto u = make({"adam", p});
  std::vector<double> rw{0.5}, rg;
  std::vector<std::vector<double>> rs(2, std::vector<double>(1, 0.0));
  tensor w = tensor::full({1}, 0.5, dtype::float64);
  auto st = u->make_state(1, w);
  ref_factor sched(0.1, 2, 0.5, 1e-8, {});
  const auto round = [](double x) { return x; };
  const std::function<double(double)> rf = round;
  for (int n = 1; n <= 7; ++n) {
    rg = {0.3 * n - 1};
    u->update(1, tensor::full({1}, rg[0], dtype::float64), w, st.get());
    ref_tensors x{rw, rg, rs, rf};
    adam_ref(p)(hyper{static_cast<std::uint64_t>(n), sched(static_cast<std::uint64_t>(n)), 0}, x);
    ASSERT_NEAR(w.at(0), rw[0], 1e-12) << "update " << n;
  }
}

// ---- per-key multipliers ----

TEST(OptimizerMultipliers, PerIntAndStringKeys) {
  // SGD on zero weights with gradient 1 and wd on a weight of 1: w = (1 - lr*wd) - lr.
  auto step = [](const optimizer_config& cfg, const key& k) {
    auto u = make(cfg);
    tensor w = tensor::ones({1}, dtype::float64);
    auto st = u->make_state(k, w);
    u->update(k, tensor::ones({1}, dtype::float64), w, st.get());
    return w.at(0);
  };
  const auto expect = [](double lr, double wd) { return (1 - hp(lr) * hp(wd)) - hp(lr); };
  const optimizer_config ints{"sgd",
                              {{"learning_rate", 0.1},
                               {"wd", 0.2},
                               {"lr_mult.3", 0.5},
                               {"wd_mult.3", 0},
                               {"lr_mult.-4", 2}}};
  EXPECT_DOUBLE_EQ(step(ints, key{3}), expect(0.05, 0.0));
  EXPECT_DOUBLE_EQ(step(ints, key{-4}), expect(0.2, 0.2));
  EXPECT_DOUBLE_EQ(step(ints, key{5}), expect(0.1, 0.2));  // default 1
  const optimizer_config strs{
      "sgd",
      {{"learning_rate", 0.1}, {"wd", 0.2}, {"lr_mult.fc1_weight", 3}, {"wd_mult.fc1_bias", 0}}};
  EXPECT_DOUBLE_EQ(step(strs, key{"fc1_weight"}), expect(0.3, 0.2));
  EXPECT_DOUBLE_EQ(step(strs, key{"fc1_bias"}), expect(0.1, 0.0));
  EXPECT_DOUBLE_EQ(step(strs, key{"fc1"}), expect(0.1, 0.2));
}

}  // namespace
}  // namespace kvactor::optref

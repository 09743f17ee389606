// Saving and loading optimizer states on a local store: a checkpoint restores the momentum a
// key had, with or without the optimizer's config in the file; bad files and mismatches are
// clear errors that change nothing.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::errc;
using kvactor::tensor;
using kvactor::testing::filled;

namespace {

const kvactor::shape s4{4};

std::string temp_file(const std::string& name) {
  return ::testing::TempDir() + "kvactor-" + name + "-" + std::to_string(::getpid());
}

double value(kvactor::kvstore& kv, int key) {
  tensor out = tensor::zeros(s4);
  kv.pull(key, out).get();
  return out.at(0);
}

// The weight change a zero gradient makes is momentum * (the key's momentum): a direct view
// of the optimizer state.
double zero_push_delta(kvactor::kvstore& kv, int key) {
  const double before = value(kv, key);
  kv.push(key, filled(s4, 0));
  return value(kv, key) - before;
}

}  // namespace

TEST(OptimizerStates, CheckpointRestoresMomentum) {
  const std::string file = temp_file("momentum");
  auto kv = kvactor::create("local");
  kv.init({1, 2}, {filled(s4, 0), filled(s4, 0)}).get();
  kv.set_optimizer(kvactor::sgd_config(0.5, 0.9)).get();
  for (int i = 1; i <= 3; ++i)
    kv.push({1, 2}, {filled(s4, i), filled(s4, -i)});
  kv.save_optimizer_states(file, true).get();
  const double d1 = zero_push_delta(kv, 1), d2 = zero_push_delta(kv, 2);
  EXPECT_NE(d1, 0.0);
  for (int i = 0; i < 5; ++i)
    kv.push({1, 2}, {filled(s4, 0), filled(s4, 0)});  // decay it
  EXPECT_NE(zero_push_delta(kv, 1), d1);
  kv.load_optimizer_states(file).get();
  EXPECT_DOUBLE_EQ(zero_push_delta(kv, 1), d1);
  EXPECT_DOUBLE_EQ(zero_push_delta(kv, 2), d2);

  // A fresh store: the file brings the optimizer with it.
  auto kv2 = kvactor::create("local");
  kv2.init({1, 2}, {filled(s4, 0), filled(s4, 0)}).get();
  kv2.load_optimizer_states(file).get();
  EXPECT_DOUBLE_EQ(zero_push_delta(kv2, 1), d1);
  std::remove(file.c_str());
}

TEST(OptimizerStates, ErrorsChangeNothing) {
  const std::string file = temp_file("errors");
  auto kv = kvactor::create("local");
  kv.init({1, 2}, {filled(s4, 0), filled(s4, 0)}).get();
  EXPECT_EQ(kv.save_optimizer_states(file).get_status().code(), errc::unsupported);  // no optimizer
  kv.set_optimizer(kvactor::sgd_config(0.5, 0.9)).get();
  kv.push({1, 2}, {filled(s4, 1), filled(s4, 1)});
  kv.save_optimizer_states(file).get();
  const double d = zero_push_delta(kv, 1);

  auto expect_refused = [&](kvactor::kvstore& store, const std::string& f, errc code,
                            const std::string& mention) {
    auto st = store.load_optimizer_states(f).get_status();
    EXPECT_EQ(st.code(), code) << st.to_string();
    EXPECT_NE(st.message().find(mention), std::string::npos) << st.to_string();
  };
  // Keys the store does not have, and other shapes.
  auto other = kvactor::create("local");
  other.init(1, filled(s4, 0)).get();
  other.set_optimizer(kvactor::sgd_config(0.5, 0.9)).get();
  expect_refused(other, file, errc::invalid_argument, "key 2");
  auto shaped = kvactor::create("local");
  shaped.init({1, 2}, {filled({5}, 0), filled({5}, 0)}).get();
  shaped.set_optimizer(kvactor::sgd_config(0.5, 0.9)).get();
  expect_refused(shaped, file, errc::shape_mismatch, "(5,)");
  // Missing, truncated, corrupt, foreign files.
  expect_refused(kv, file + ".missing", errc::invalid_argument, "cannot read");
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  auto write = [](const std::string& f, const std::string& b) {
    std::ofstream(f, std::ios::binary) << b;
  };
  write(file + ".trunc", bytes.substr(0, bytes.size() / 2));
  expect_refused(kv, file + ".trunc", errc::protocol_error, "");
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x40;
  write(file + ".corrupt", flipped);
  expect_refused(kv, file + ".corrupt", errc::protocol_error, "corrupt");
  write(file + ".foreign", "PK\x03\x04 this is a zip file, not a checkpoint");
  expect_refused(kv, file + ".foreign", errc::protocol_error, "not a kvactor");
  // None of that changed the state: the momentum keeps decaying by 0.9 per zero push.
  EXPECT_NEAR(zero_push_delta(kv, 1), 0.9 * d, 1e-5);
  for (const char* suffix : {"", ".trunc", ".corrupt", ".foreign"})
    std::remove((file + suffix).c_str());
}

// Multi-precision on a local store: float16 weights move through a float32 master copy; the
// master is part of the checkpoint.
TEST(OptimizerStates, MultiPrecisionKeepsAFloat32Master) {
  const kvactor::shape s{8};
  auto kv = kvactor::create("local");
  kv.init({1, 2}, {tensor::full(s, 1, kvactor::dtype::float16),
                   tensor::full(s, 1, kvactor::dtype::float16)})
      .get();
  // 0.0001 per step is below half a float16 step at 1: without a master the weight stays.
  kv.set_optimizer(kvactor::optimizer_config{"sgd", {{"learning_rate", 0.0001}}}).get();
  for (int i = 0; i < 10; ++i)
    kv.push(1, tensor::full(s, 1, kvactor::dtype::float16));
  tensor h = tensor::zeros(s, kvactor::dtype::float16);
  kv.pull(1, h).get();
  EXPECT_EQ(h.at(0), 1.0);
  kv.set_optimizer(
        kvactor::optimizer_config{"sgd", {{"learning_rate", 0.0001}, {"multi_precision", 1}}})
      .get();
  float w = 1.0f;
  for (int i = 0; i < 10; ++i) {
    kv.push(2, tensor::full(s, 1, kvactor::dtype::float16));
    w = 1.0f * w - 0.0001f * 1.0f;
  }
  kv.pull(2, h).get();
  EXPECT_EQ(h.at(0), static_cast<double>(kvactor::to_float(kvactor::to_float16(w))));
  // The checkpoint carries the master: a fresh store continues from it exactly.
  const std::string file = temp_file("mp");
  kv.save_optimizer_states(file, true).get();
  auto kv2 = kvactor::create("local");
  kv2.init({1, 2}, {tensor::full(s, 1, kvactor::dtype::float16),
                    tensor::full(s, 1, kvactor::dtype::float16)})
      .get();
  kv2.load_optimizer_states(file).get();
  kv2.push(2, tensor::full(s, 1, kvactor::dtype::float16));
  kv2.pull(2, h).get();
  w = 1.0f * w - 0.0001f;
  EXPECT_EQ(h.at(0), static_cast<double>(kvactor::to_float(kvactor::to_float16(w))));
  std::remove(file.c_str());
}

// KVACTOR_EMULATE_CUDA: a value that is not 0..16 is an error from every way into the device
// layer and from kvactor::create(), never silently ignored. The variable is read once per
// process, so CMakeLists.txt runs this program once per setting (ctest names
// emulate_setting.*), each with a --gtest_filter for the tests that fit it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <string>

#include "emulate_setting.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/tensor.hpp"

using kvactor::device;
using kvactor::errc;
using kvactor::tensor;

namespace {

std::string setting() {
  const char* v = std::getenv("KVACTOR_EMULATE_CUDA");
  return v ? v : "(unset)";
}

// The message of the invalid_argument that f throws (a test failure if it throws nothing
// or something else).
std::string refusal(const char* what, const std::function<void()>& f) {
  try {
    f();
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument) << what << ": " << e.what();
    return e.what();
  }
  ADD_FAILURE() << what << " accepted KVACTOR_EMULATE_CUDA=" << setting();
  return {};
}

TEST(EmulateSettingInvalid, EveryEntryPointRefusesIt) {
  ASSERT_TRUE(setting() == "two" || setting() == "99")
      << "run through ctest (emulate_setting.*), which sets KVACTOR_EMULATE_CUDA";
  const std::pair<const char*, std::function<void()>> calls[] = {
      {"cuda_device_count()", [] { (void)kvactor::cuda_device_count(); }},
      {"cuda_emulated()", [] { (void)kvactor::cuda_emulated(); }},
      {"cuda_available()", [] { (void)kvactor::cuda_available(); }},
      {"check_cuda_device(cuda(0))", [] { kvactor::check_cuda_device(device::cuda(0)); }},
      {"tensor on cuda(0)",
       [] { (void)tensor::zeros({2}, kvactor::dtype::float32, device::cuda(0)); }},
      {"create(\"local\")", [] { (void)kvactor::create("local"); }},
      {"create(\"device\")", [] { (void)kvactor::create("device"); }},
      {"create(\"dist_sync\")", [] { (void)kvactor::create("dist_sync"); }},
      // Asked again: refused again, not forgotten after the first error.
      {"cuda_device_count() again", [] { (void)kvactor::cuda_device_count(); }},
  };
  for (const auto& [what, call] : calls) {
    const std::string msg = refusal(what, call);
    EXPECT_NE(msg.find("KVACTOR_EMULATE_CUDA=\"" + setting() + "\""), std::string::npos)
        << what << ": " << msg;
    EXPECT_NE(msg.find("from 1 to 16"), std::string::npos) << what << ": " << msg;
    EXPECT_NE(msg.find("0 or empty"), std::string::npos) << what << ": " << msg;
  }
  // Whether CUDA was compiled in says nothing about devices, so it still answers.
  EXPECT_NO_THROW((void)kvactor::cuda_compiled());
}

TEST(EmulateSettingOff, ZeroOrEmptyMeansNoEmulation) {
  ASSERT_TRUE(setting() == "0" || setting().empty())
      << "run through ctest (emulate_setting.*), which sets KVACTOR_EMULATE_CUDA";
  EXPECT_FALSE(kvactor::cuda_emulated());
  auto kv = kvactor::create("local");
  kv.init(1, tensor::ones({2})).get();
  tensor out = tensor::zeros({2});
  kv.pull(1, out).get();
  EXPECT_EQ(out.to_vector(), (std::vector<double>{1, 1}));
}

// The parser itself, on values a process cannot be given twice.
TEST(EmulateSettingParse, WholeNumbersFromZeroToSixteen) {
  using kvactor::detail::emu::parse_setting;
  const std::pair<const char*, int> good[] = {{nullptr, 0}, {"", 0},    {"0", 0},  {"1", 1},
                                              {"2", 2},     {"16", 16}, {"007", 7}};
  for (const auto& [value, n] : good) {
    auto r = parse_setting(value);
    ASSERT_TRUE(r) << (value ? value : "(null)") << ": " << r.error().to_string();
    EXPECT_EQ(*r, n) << (value ? value : "(null)");
  }
  for (const char* bad : {"two", "17", "99", "-1", "+2", " 2", "2 ", "2x", "1e1", "0x2", "1000"}) {
    auto r = parse_setting(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), errc::invalid_argument) << bad;
    EXPECT_NE(r.error().message().find(std::string{"\""} + bad + "\""), std::string::npos)
        << r.error().message();
  }
}

}  // namespace

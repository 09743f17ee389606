// The parser of KVACTOR_EMULATE_CUDA, apart from the backends so that tests can check it on
// values a process cannot be given twice. Thread-safety: pure functions.
#pragma once

#include "kvactor/result.hpp"

namespace kvactor::detail::emu {

inline constexpr int max_emulated_devices = 16;
/// The value of KVACTOR_EMULATE_CUDA: N in 1..max_emulated_devices, 0 when unset, empty or
/// "0" (off), or invalid_argument naming the variable, the value and what it may be.
result<int> parse_setting(const char* value);

}  // namespace kvactor::detail::emu

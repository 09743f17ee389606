// Turns the facade's arguments (one key or a list; one value, a list or a list of lists)
// into one group per distinct key, in first-appearance order, and checks everything that
// can be checked without the store: counts, null tensors, devices, overlapping outputs.
// Thread-safety: pure functions.
#pragma once

#include <vector>

#include "kvactor/kvstore.hpp"
#include "kvactor/result.hpp"
#include "op.hpp"

namespace kvactor::detail {

struct key_group {
  key k;
  tensor_list values;
  tensor_list outs;
  key_info_ptr info;  // set by the store once the key is validated
};

/// values: what the call pushes or initialises (empty for pull); outs: where it writes
/// (empty for push and init). For pushpull without outs, pass values as outs.
using group_list = boost::container::small_vector<key_group, 1>;

result<group_list> group_arguments(op_kind kind, const key_list& keys,
                                               const value_list& values, const value_list& outs);

/// invalid_argument when an output overlaps another output, or a value of another key.
status check_overlaps(op_kind kind, const group_list& groups);

/// shape_mismatch / dtype_mismatch / invalid_argument when t does not fit key info.
status check_tensor(op_kind kind, const key_info& info, const tensor& t, const char* role);

/// For init: the value must be a non-empty CPU tensor.
status check_init_value(const key& k, const tensor& t);

}  // namespace kvactor::detail

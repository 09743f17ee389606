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

// Moves may throw only as boost's small_vector declares (it does not say noexcept); moving
// tensors does not throw.
struct key_group {  // NOLINT(bugprone-exception-escape)
  key k;
  tensor_list values;
  tensor_list outs;
  key_info_ptr info;  // set by the store once the key is validated
};

/// values: what the call pushes or initialises (empty for pull); outs: where it writes
/// (empty for push and init). For pushpull without outs, pass values as outs.
using group_list = boost::container::small_vector<key_group, 1>;

/// Tensors on CUDA devices are refused (errc::unsupported) unless device_tensors.
result<group_list> group_arguments(op_kind kind, const key_list& keys, const value_list& values,
                                   const value_list& outs, bool device_tensors = false);

/// invalid_argument when an output overlaps another output, or a value of another key.
status check_overlaps(op_kind kind, const group_list& groups);

/// shape_mismatch / dtype_mismatch / invalid_argument when t does not fit key info.
status check_tensor(op_kind kind, const key_info& info, const tensor& t, const char* role);

class key_registry;
/// A group of a push, pull or pushpull against the registry (the caller holds reg.mutex()):
/// its key is of the call's key kind (that of `first`) and initialized, and every value and
/// output has the key's shape and dtype. Sets g.info.
status resolve_group(op_kind kind, key_group& g, const key& first, const key_registry& reg);
/// A group of an init or broadcast against the registry (the caller holds reg.mutex()): its
/// key is of the call's key kind (that of `first`) and not initialized yet, its value can
/// initialise it, and every output fits it. Returns the key as the value would make it
/// (shape, dtype and key; not registered), for a store's further checks.
result<key_info> check_new_group(op_kind kind, const key_group& g, const key& first,
                                 const key_registry& reg);
/// unsupported when gradient compression (gc) is on and the resolved group's key is not
/// float32: compression codes float32 values.
status check_compressible(op_kind kind, const compression::params& gc, const key_group& g);

struct sparse_group {
  key k;
  std::vector<row_sparse_tensor> values;
  key_info_ptr info;
};

/// Row-sparse values per distinct key, by the rules of group_arguments (rows on CUDA devices
/// included).
result<std::vector<sparse_group>> group_sparse(op_kind kind, const key_list& keys,
                                               const sparse_list& values,
                                               bool device_tensors = false);

/// Row ids of any shape, read flat (int32/int64, or floats holding whole numbers), as sorted
/// unique int64, each in [0, rows); out_of_range or invalid_argument naming the key and the
/// id otherwise.
result<std::vector<std::int64_t>> parse_row_ids(const key& k, const tensor& ids, std::int64_t rows);

/// One row-id tensor given for a list of keys serves every key.
value_list spread_row_ids(const key_list& keys, const value_list& row_ids);

class key_registry;

/// A row_sparse_pull, checked whole: per key its outputs and, per output (or one for all),
/// the sorted unique row ids it wants.
struct row_pull_request {  // NOLINT(bugprone-exception-escape): as key_group
  group_list groups;       // outs and info set
  std::vector<std::vector<std::vector<std::int64_t>>> ids;
};
/// Groups, then checks against the registry (taking its lock shared). With device_tensors,
/// outputs and row ids may be on CUDA devices (ids there are copied to the host to be read).
/// With compact, each output holds only its requested rows (ids x the key's row, in id
/// order: the row-sparse outputs of kvstore.hpp) instead of the key's shape.
result<row_pull_request> prepare_row_pull(const key_list& keys, const value_list& outs,
                                          const value_list& row_ids, const key_registry& reg,
                                          bool device_tensors = false, bool compact = false);

/// A row-sparse push's keys are initialised and its values fit them; sets each group's
/// info. Takes the registry's lock shared.
status check_sparse_push(std::vector<sparse_group>& groups, const key_registry& reg);

/// For init: the value must be a non-empty CPU tensor.
status check_init_value(const key& k, const tensor& t);

}  // namespace kvactor::detail

// MXNet's pull converts: the stored value is copied into an output of any element type
// (CopyFromTo casts), so a float16 key pulls into a float32 output. The stores write outputs
// of the key's own type only; the facade gives them a staging tensor of the key's type (same
// shape, same device) in place of each output of another type, and converts the staging
// tensor into the caller's output once the store is done. Calls whose outputs all have their
// key's type pass through untouched.
// Thread-safety: stage_outputs is a pure function; pending_casts may be used from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "kvactor/future.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/result.hpp"
#include "op.hpp"

namespace kvactor::detail {

/// Conversions begun and not finished, so that wait_all() and destruction wait for them.
class pending_casts {
 public:
  void begin();
  void end();
  void wait_zero();
  std::size_t value() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable zero_;
  std::size_t n_ = 0;
};

/// A caller's output and the staging tensor the store writes instead.
struct output_cast {
  tensor staging;
  tensor out;
};

struct staged_outputs {
  value_list outs;  // what the store is given instead of the caller's outputs, when casts
  std::vector<output_cast> casts;
};

/// The element type a key holds, or nothing when the store does not know the key.
using key_dtype_fn = std::function<std::optional<dtype>(const key&)>;

/// outs, with each output whose type differs from its key's replaced by a staging tensor
/// (no casts, and outs left empty, when none differs). kind is pull (also for
/// row_sparse_pull: key_dtype is asked), pushpull or broadcast (the values' type is the
/// key's). Arguments the store will refuse (counts, unknown keys) are passed on unchanged for
/// it to refuse; outputs that overlap are refused here (invalid_argument), as the store would
/// have refused them.
result<staged_outputs> stage_outputs(op_kind kind, const key_list& keys, const value_list& values,
                                     const value_list& outs, const key_dtype_fn& key_dtype);

/// Takes write leases on the caller's outputs now; once `stored` completes successfully,
/// converts each staging tensor into its output (on the output's device), then completes
/// the returned future with stored's status. On failure the outputs are left as they were.
future<void> finish_casts(const future<void>& stored, std::vector<output_cast> casts,
                          std::shared_ptr<pending_casts> pending);

}  // namespace kvactor::detail

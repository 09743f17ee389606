#include "output_cast.hpp"

#include <atomic>
#include <functional>
#include <string>

#include <boost/container/small_vector.hpp>

#include "kvactor/cuda.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/kernels.hpp"
#include "request.hpp"

namespace kvactor::detail {

void pending_casts::begin() {
  std::lock_guard<std::mutex> g(mu_);
  ++n_;
}

void pending_casts::end() {
  std::lock_guard<std::mutex> g(mu_);
  if (--n_ == 0) zero_.notify_all();
}

void pending_casts::wait_zero() {
  std::unique_lock<std::mutex> lk(mu_);
  zero_.wait(lk, [this] { return n_ == 0; });
}

std::size_t pending_casts::value() const {
  std::lock_guard<std::mutex> g(mu_);
  return n_;
}

namespace {

// Calls fn(key index, tensor) for each tensor of v, pairing tensors with keys by the
// facade's rules (kvstore.hpp); false when v's form does not fit the keys (the store refuses
// such a call with its own message).
template <class F>
bool for_each_tensor(const key_list& keys, const value_list& v, F&& fn) {
  switch (v.shape()) {
    case value_list::form::none:
      return false;
    case value_list::form::single:
      if (keys.size() != 1) return false;
      fn(0, v.single());
      return true;
    case value_list::form::list:
      if (keys.is_list() && v.flat().size() != keys.size()) return false;
      for (std::size_t i = 0; i < v.flat().size(); ++i)
        fn(keys.is_list() ? i : 0, v.flat()[i]);
      return true;
    case value_list::form::nested:
      if (!keys.is_list() || v.nested().size() != keys.size()) return false;
      for (std::size_t i = 0; i < v.nested().size(); ++i)
        for (const auto& t : v.nested()[i])
          fn(i, t);
      return true;
  }
  return false;
}

// v with each tensor replaced by fn(key index, tensor), in v's form. v fits the keys.
template <class F>
value_list map_tensors(const key_list& keys, const value_list& v, F&& fn) {
  switch (v.shape()) {
    case value_list::form::single:
      return value_list(fn(0, v.single()));
    case value_list::form::list: {
      std::vector<tensor> out;
      for (std::size_t i = 0; i < v.flat().size(); ++i)
        out.push_back(fn(keys.is_list() ? i : 0, v.flat()[i]));
      return value_list(std::move(out));
    }
    case value_list::form::nested: {
      std::vector<std::vector<tensor>> out(v.nested().size());
      for (std::size_t i = 0; i < v.nested().size(); ++i)
        for (const auto& t : v.nested()[i])
          out[i].push_back(fn(i, t));
      return value_list(std::move(out));
    }
    case value_list::form::none:
      break;
  }
  return v;
}

}  // namespace

result<staged_outputs> stage_outputs(op_kind kind, const key_list& keys, const value_list& values,
                                     const value_list& outs, const key_dtype_fn& key_dtype) {
  staged_outputs staged;  // outs left empty: the call goes on as it was
  // The type each key holds. A pushpull's or broadcast's values have it (or the store refuses
  // them), which spares the hot pushpull a registry lookup; a pull asks the store.
  boost::container::small_vector<std::optional<dtype>, 4> types(keys.size());
  if (kind == op_kind::pushpull || kind == op_kind::broadcast)
    for_each_tensor(keys, values, [&](std::size_t i, const tensor& t) {
      if (!types[i] && t.defined()) types[i] = t.dtype();
    });
  else
    for (std::size_t i = 0; i < keys.size(); ++i)
      types[i] = key_dtype(keys[i]);
  bool any = false;
  const bool fits = for_each_tensor(keys, outs, [&](std::size_t i, const tensor& t) {
    any = any || (t.defined() && types[i] && t.dtype() != *types[i]);
  });
  if (!fits || !any) return staged;

  // The caller's outputs must not overlap, though the staging tensors will not.
  auto groups = group_arguments(kind, keys, values, outs, /*device_tensors=*/true);
  if (!groups) return staged;  // the store refuses the call itself
  if (auto s = check_overlaps(kind, *groups); !s) return s;

  try {
    staged.outs = map_tensors(keys, outs, [&](std::size_t i, const tensor& t) {
      if (!t.defined() || !types[i] || t.dtype() == *types[i]) return t;
      tensor staging = tensor::empty(t.shape(), *types[i], t.device());
      staged.casts.push_back(output_cast{staging, t});
      return staging;
    });
  } catch (const error& e) {  // no memory on the output's device
    return e.to_status();
  }
  return staged;
}

namespace {

// One call's conversions: completes `done` once every device conversion has reported.
struct cast_batch {
  std::vector<output_cast> casts;
  std::shared_ptr<pending_casts> pending;
  promise<void> done;
  std::atomic<std::size_t> waiting{0};
  std::mutex mu;
  status first_error;  // guarded by mu

  void fail(status s) {
    std::lock_guard<std::mutex> g(mu);
    if (first_error.is_ok()) first_error = std::move(s);
  }
  // The last report releases the outputs, then completes the call.
  void report() {
    if (waiting.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    for (const auto& c : casts)
      c.out.storage_ptr()->end_write();
    status s;
    {
      std::lock_guard<std::mutex> g(mu);
      s = first_error;
    }
    done.set_status(std::move(s));
    pending->end();  // after the status, so that wait_all() sees a failure
  }
};

void convert(const std::shared_ptr<cast_batch>& b, const output_cast& c) {
  const std::size_t n = c.out.size();
  if (c.out.device().is_cpu()) {
    kernels::cast(c.staging.dtype(), c.staging.data_unchecked(), c.out.dtype(),
                  c.out.data_unchecked(), 0, n);
    b->report();
    return;
  }
  try {
    // One stream per output buffer keeps two pulls into the same output in issue order.
    const auto s = get_stream(c.out.device(), stream_priority::normal,
                              std::hash<const void*>{}(c.out.data_unchecked()));
    device_kernels::cast_async(s, c.staging.dtype(), c.staging.data_unchecked(), c.out.dtype(),
                               c.out.data_unchecked(), n);
    enqueue_callback(s, [b, keep = c](const status& st) {
      if (!st.is_ok()) b->fail(st);
      b->report();
    });
  } catch (const error& e) {
    b->fail(status{errc::internal, "converting the pulled value into an output on " +
                                       c.out.device().to_string() + ": " + e.message()});
    b->report();
  }
}

}  // namespace

future<void> finish_casts(const future<void>& stored, std::vector<output_cast> casts,
                          std::shared_ptr<pending_casts> pending) {
  auto b = std::make_shared<cast_batch>();
  b->casts = std::move(casts);
  b->pending = std::move(pending);
  for (const auto& c : b->casts)
    c.out.storage_ptr()->begin_write();
  b->pending->begin();
  auto result = b->done.get_future();
  stored.then([b](const future<void>& f) {
    const status& st = f.get_status();
    // One report per conversion, plus this one, so nothing completes before all have begun.
    b->waiting.store(b->casts.size() + 1, std::memory_order_release);
    if (!st.is_ok()) {
      b->fail(st);
      b->waiting.store(1, std::memory_order_release);
      b->report();
      return;
    }
    for (const auto& c : b->casts)
      convert(b, c);
    b->report();
  });
  return result;
}

}  // namespace kvactor::detail

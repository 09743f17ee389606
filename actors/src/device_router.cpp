// dist_sync_device / dist_async_device: the cluster router behind a wrapper that takes values
// and outputs on CUDA devices (device_router.hpp). The front has grouped and validated the
// call against the registry, device tensors included, before any device work starts. A push's
// values for one key are then summed on a device of the worker (the first device value's; host
// values are uploaded to it) and the sum copied to host memory, so the worker sends one value
// per key; outputs on devices get host stand-ins that are copied to the devices once the
// cluster router has filled them.
//
// Order. Device work completes later than the call that asked for it, so calls go through a
// FIFO: a call is handed to the cluster router once every call before it has been, and once
// its own device values are in host memory. A call without device tensors, when nothing is
// queued, goes straight through under the front's registry lock. A queued call is routed
// later under a registry lock of its own; it was queued under the front's, so a call that
// found a key is queued after the key's init. Completions of device work arrive on the device
// callback thread, which then forwards the calls now ready (the cluster router never blocks).
#include "device_router.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

#include "kvactor/cuda.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_ops.hpp"

namespace kvactor::detail {
namespace {

bool on_device(const tensor& t) {
  return t.defined() && !t.device().is_cpu();
}

bool on_device(const row_sparse_tensor& v) {
  return v.defined() && !v.device().is_cpu();
}

template <class Groups>
bool any_on_device(const Groups& groups) {
  for (const auto& g : groups) {
    if (std::any_of(g.values.begin(), g.values.end(), [](const auto& t) { return on_device(t); }))
      return true;
    if constexpr (!std::is_same_v<Groups, std::vector<sparse_group>>)
      if (std::any_of(g.outs.begin(), g.outs.end(), [](const tensor& t) { return on_device(t); }))
        return true;
  }
  return false;
}

// Device work of one call: the streams it used and the tensors it must keep alive until they
// have all reported back.
struct device_batch {
  std::vector<device_stream> streams;
  std::vector<tensor> keep;

  void use(const device_stream& s) {
    if (std::find(streams.begin(), streams.end(), s) == streams.end()) streams.push_back(s);
  }

  // Calls done(first error or ok) once every stream has reached this point.
  void when_done(std::function<void(status)> done) {
    when_all_done(streams,
                  [keep = std::move(keep), done = std::move(done)](const status& st) mutable {
                    keep.clear();
                    done(st);
                  });
  }
};

stream_priority stream_for(int priority) {
  return priority > 0 ? stream_priority::high : stream_priority::normal;
}

// Enqueues host = the sum of values (at least one on a device), summed on the first device
// value's device.
tensor sum_to_host(const tensor_list& values, const key& k, int priority, device_batch& b) {
  const tensor& first_dev =
      *std::find_if(values.begin(), values.end(), [](const tensor& t) { return on_device(t); });
  const device d = first_dev.device();
  const auto s = get_stream(d, stream_for(priority), std::hash<std::string>{}(k.to_string()));
  b.use(s);
  const std::size_t bytes = first_dev.nbytes();
  tensor host = pinned_empty(first_dev.shape(), first_dev.dtype());
  b.keep.push_back(host);
  if (values.size() == 1) {
    device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), first_dev.data_unchecked(),
                               d, bytes);
    b.keep.push_back(first_dev);
    return host;
  }
  tensor sum = tensor::empty(first_dev.shape(), first_dev.dtype(), d);
  const std::vector<tensor> inputs(values.begin(), values.end());
  for (auto& t : sum_on_device_async(s, inputs, sum))
    b.keep.push_back(std::move(t));
  b.keep.insert(b.keep.end(), inputs.begin(), inputs.end());
  device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), sum.data_unchecked(), d,
                             bytes);
  b.keep.push_back(std::move(sum));
  return host;
}

// A host tensor that an enqueued copy fills with t (on t's device).
tensor copy_to_host(const tensor& t, int priority, device_batch& b) {
  const auto s = get_stream(t.device(), stream_for(priority));
  b.use(s);
  tensor host = pinned_empty(t.shape(), t.dtype());
  device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), t.data_unchecked(),
                             t.device(), t.nbytes());
  b.keep.push_back(t);
  b.keep.push_back(host);
  return host;
}

using copy_list = std::vector<std::pair<tensor, tensor>>;  // (device output, host stand-in)

// Host stand-ins for the outputs on devices, remembered in copy_back.
void stand_in_outputs(tensor_list& outs, copy_list& copy_back) {
  for (auto& o : outs) {
    if (!on_device(o)) continue;
    tensor stand_in = pinned_empty(o.shape(), o.dtype());
    copy_back.emplace_back(o, stand_in);
    o = std::move(stand_in);
  }
}

// The same groups on host tensors: a key's values summed to one host value when any is on a
// device, outputs on devices replaced by stand-ins.
void to_host(group_list& groups, int priority, device_batch& b, copy_list& copy_back) {
  for (auto& g : groups) {
    if (std::any_of(g.values.begin(), g.values.end(), [](const tensor& t) { return on_device(t); }))
      g.values = tensor_list{sum_to_host(g.values, g.k, priority, b)};
    stand_in_outputs(g.outs, copy_back);
  }
}

class device_router final : public router {
 public:
  device_router(front_state& st, std::unique_ptr<router> inner)
      : router(properties{/*device_tensors=*/true, inner->props().compress_single}),
        st_(st),
        inner_(std::move(inner)) {}

  void start(std::weak_ptr<store_impl> front) override { inner_->start(std::move(front)); }
  status check(op_kind kind, const group_list& groups) const override {
    return inner_->check(kind, groups);
  }
  status check_new(const key_group& g, const key_info& probe) const override {
    return inner_->check_new(g, probe);
  }
  std::vector<device> homes(const group_list& groups) override { return inner_->homes(groups); }

  future<void> route_new(op_kind kind, group_list& groups, int priority,
                         std::unique_lock<std::shared_mutex>& lk) override {
    return route_groups(
        groups, priority, lk, [&] { return inner_->route_new(kind, groups, priority, lk); },
        [&] {
          // Moves as key_group does (boost::small_vector says no noexcept).
          // NOLINTNEXTLINE(bugprone-exception-escape)
          return [this, kind, priority, groups]() mutable {
            std::unique_lock<std::shared_mutex> own(st_.reg.mutex());
            return inner_->route_new(kind, groups, priority, own);
          };
        });
  }

  future<void> route(op_kind kind, group_list& groups, int priority,
                     const front_state::snapshot& snap,
                     std::shared_lock<std::shared_mutex>& lk) override {
    return route_groups(
        groups, priority, lk, [&] { return inner_->route(kind, groups, priority, snap, lk); },
        [&] {
          // Moves as key_group does (boost::small_vector says no noexcept).
          // NOLINTNEXTLINE(bugprone-exception-escape)
          return [this, kind, priority, snap, groups]() mutable {
            std::shared_lock<std::shared_mutex> own(st_.reg.mutex());
            return inner_->route(kind, groups, priority, snap, own);
          };
        });
  }

  // Rows on devices are copied to host memory first.
  future<void> route_sparse(std::vector<sparse_group>& groups, int priority,
                            std::shared_ptr<const updater> upd,
                            std::shared_lock<std::shared_mutex>& lk) override {
    auto later = [&] {
      return [this, groups, priority, upd]() mutable {
        std::shared_lock<std::shared_mutex> own(st_.reg.mutex());
        return inner_->route_sparse(groups, priority, upd, own);
      };
    };
    if (!any_on_device(groups))
      return in_order(
          &lk, [&] { return inner_->route_sparse(groups, priority, upd, lk); }, later);
    auto b = std::make_shared<device_batch>();
    try {
      for (auto& g : groups)
        for (auto& v : g.values)
          if (on_device(v))
            v = row_sparse_tensor::from(v.host_indices(), copy_to_host(v.data(), priority, *b),
                                        v.shape());
    } catch (const error& e) {
      return ready(e.to_status());
    }
    return after_device_work(enqueue(later(), {}, priority), *b, lk);
  }

  // Outputs on devices get host stand-ins that the cluster router fills (requested rows,
  // zero elsewhere; compact: only the requested rows, as the outputs) and that are then
  // copied to them. (The front has read the row ids, on the host.)
  future<void> route_rows(row_pull_request& req, int priority, bool compact,
                          std::shared_lock<std::shared_mutex>& lk) override {
    auto later = [&] {
      // Moves as key_group does (boost::small_vector says no noexcept).
      // NOLINTNEXTLINE(bugprone-exception-escape)
      return [this, req, priority, compact]() mutable {
        std::shared_lock<std::shared_mutex> own(st_.reg.mutex());
        return inner_->route_rows(req, priority, compact, own);
      };
    };
    if (!any_on_device(req.groups))
      return in_order(
          &lk, [&] { return inner_->route_rows(req, priority, compact, lk); }, later);
    copy_list copy_back;
    try {
      for (auto& g : req.groups)
        stand_in_outputs(g.outs, copy_back);
    } catch (const error& e) {
      return ready(e.to_status());
    }
    device_batch none;
    return after_device_work(enqueue(later(), std::move(copy_back), priority), none, lk);
  }

  void check_updater() const override { inner_->check_updater(); }
  future<void> set_optimizer(const optimizer_config& cfg, split_optimizer& split) override {
    return in_order_call(
        [this, cfg, split]() mutable { return inner_->set_optimizer(cfg, split); });
  }
  future<void> set_compression(const compression::params& p) override {
    return in_order_call([this, p] { return inner_->set_compression(p); });
  }
  future<void> save_states(const std::string& file, bool dump_optimizer) override {
    return in_order_call(
        [this, file, dump_optimizer] { return inner_->save_states(file, dump_optimizer); });
  }
  future<void> load_states(const std::string& file) override {
    return in_order_call([this, file] { return inner_->load_states(file); });
  }
  future<void> send_command(int head, const std::string& body) override {
    return in_order_call([this, head, body] { return inner_->send_command(head, body); });
  }
  int rank() const override { return inner_->rank(); }
  int num_workers() const override { return inner_->num_workers(); }
  future<void> barrier() override {
    return in_order_call([this] { return inner_->barrier(); });
  }

  // The front takes no more calls: the queued ones are forwarded and complete (the cluster
  // router still runs), then the cluster router stops.
  void shutdown() override {
    {
      std::unique_lock<std::mutex> lk(mu_);
      idle_.wait(lk, [this] { return open_ == 0 && !pumping_; });
    }
    inner_->shutdown();
  }
  const caf::actor* client_actor() const noexcept override { return inner_->client_actor(); }

 private:
  using forward_fn = std::function<future<void>()>;
  struct item {
    forward_fn forward;
    copy_list copy_back;
    int priority = 0;
    bool ready = false;
    status failed;  // device work that failed: the call is not forwarded
    std::shared_ptr<call_state> outer;
  };
  using item_ptr = std::shared_ptr<item>;

  // A push, pull, pushpull, init or broadcast: straight through without device tensors,
  // else after its device work. `later()` makes the call that routes the (host) groups as
  // they are then, under a registry lock of its own; it is made only for a queued call.
  template <class Lock, class Now, class Later>
  future<void> route_groups(group_list& groups, int priority, Lock& lk, Now now, Later later) {
    if (!any_on_device(groups)) return in_order(&lk, now, later);
    auto b = std::make_shared<device_batch>();
    copy_list copy_back;
    try {
      to_host(groups, priority, *b, copy_back);
    } catch (const error& e) {
      return ready(e.to_status());
    }
    return after_device_work(enqueue(later(), std::move(copy_back), priority), *b, lk);
  }

  // Queued behind the calls before it, ready once b's device work has reported back. The
  // front's lock goes first: the thread that forwards calls locks the registry again.
  template <class Lock>
  future<void> after_device_work(const item_ptr& it, device_batch& b, Lock& lk) {
    auto f = it->outer->get_future();
    lk.unlock();
    if (b.streams.empty())
      mark_ready(it, status{});
    else
      b.when_done([this, it](status s) { mark_ready(it, std::move(s)); });
    return f;
  }

  // A call without device work: `now` at once (with the front's lock, if any) when nothing
  // waits before it, else the call `later()` makes, once the calls before it have gone.
  template <class Lock, class Now, class Later>
  future<void> in_order(Lock* lk, Now&& now, Later&& later) {
    bool direct = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (queue_.empty() && !pumping_) direct = pumping_ = true;
    }
    if (direct) {
      auto f = now();
      if (lk && lk->owns_lock()) lk->unlock();
      pump();  // what was queued meanwhile
      return f;
    }
    auto it = enqueue(later(), {}, 0);
    auto f = it->outer->get_future();
    if (lk && lk->owns_lock()) lk->unlock();
    mark_ready(it, status{});
    return f;
  }
  template <class Call>
  future<void> in_order_call(Call call) {
    std::unique_lock<std::shared_mutex>* none = nullptr;
    return in_order(none, call, [&] { return call; });
  }

  item_ptr enqueue(forward_fn forward, copy_list copy_back, int priority) {
    auto it = std::make_shared<item>();
    it->forward = std::move(forward);
    it->copy_back = std::move(copy_back);
    it->priority = priority;
    it->outer = std::make_shared<call_state>(1, st_.counter);
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back(it);
    ++open_;
    return it;
  }

  void mark_ready(const item_ptr& it, status s) {
    {
      std::lock_guard<std::mutex> g(mu_);
      it->ready = true;
      it->failed = std::move(s);
      if (pumping_) return;  // the thread that pumps sees it
      pumping_ = true;
    }
    pump();
  }

  // Forwards, in order, every call now ready at the front of the queue; one thread at a time
  // (pumping_, which the caller set), without the lock while it calls the cluster router.
  void pump() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!queue_.empty() && queue_.front()->ready) {
      item_ptr front = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      if (!front->failed.is_ok()) {
        finish(front, front->failed);
      } else {
        future<void> f = front->forward();
        f.then([this, front](const future<void>& done) { after_inner(front, done); });
      }
      lk.lock();
    }
    pumping_ = false;
    idle_.notify_all();
  }

  void after_inner(const item_ptr& it, const future<void>& done) {
    status s = done.get_status();
    if (!s.is_ok() || it->copy_back.empty()) return finish(it, s);
    auto b = std::make_shared<device_batch>();
    try {
      for (const auto& [dev_out, host] : it->copy_back) {
        const auto st = get_stream(dev_out.device(), stream_for(it->priority));
        device_kernels::copy_async(st, dev_out.data_unchecked(), dev_out.device(),
                                   host.data_unchecked(), device::cpu(), host.nbytes());
        b->keep.push_back(dev_out);
        b->keep.push_back(host);
        b->use(st);
      }
    } catch (const error& e) {
      s = e.to_status();
    }
    b->when_done([this, it, s](const status& st) { finish(it, s.is_ok() ? st : s); });
  }

  void finish(const item_ptr& it, const status& s) {
    it->outer->part_done(s);
    std::lock_guard<std::mutex> g(mu_);
    if (--open_ == 0) idle_.notify_all();
  }

  front_state& st_;
  std::unique_ptr<router> inner_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  std::deque<item_ptr> queue_;
  std::size_t open_ = 0;  // calls queued or copying back
  bool pumping_ = false;  // a thread forwards calls, or routes one straight through
};

}  // namespace

std::unique_ptr<router> with_device_values(front_state& st, std::unique_ptr<router> inner) {
  return std::make_unique<device_router>(st, std::move(inner));
}

}  // namespace kvactor::detail

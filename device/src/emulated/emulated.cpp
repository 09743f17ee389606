// Emulated CUDA devices (see cuda_backend.hpp): host memory, streams as ordered task queues
// run by a few host threads, events as gates between queues, and the CPU kernels.
//
// Scheduling. A stream with queued work is "ready" once; a worker takes the most urgent ready
// stream (high-priority streams first, then in turn), runs one task of it, and puts it back if
// more is queued, so one stream's tasks run in order and never two at once, while different
// streams run concurrently. A stream_wait() enqueues a gate that holds the waiting stream
// until the task recorded on the other stream has run. Callbacks go to the callback thread.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "../callback_thread.hpp"
#include "../cuda_backend.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/pool_core.hpp"

namespace kvactor::detail::emu {
namespace {

struct strand;

// Opened by a task on one stream; holds the streams that wait for it until then.
struct gate {
  bool open = false;
  std::vector<strand*> held;
};

struct task {
  std::function<void()> fn;                  // device work; skipped after a failure
  std::function<void(const status&)> after;  // completion: runs even after a failure, with it
  std::shared_ptr<gate> wait_for;            // run only once this is open
  std::shared_ptr<gate> opens;               // open this after fn
};

struct strand {
  int device = 0;
  stream_priority priority = stream_priority::normal;
  std::deque<task> queue;
  bool scheduled = false;  // in a ready list, or running
  status failure;          // sticky, like a CUDA error: the first task that threw
};

class executor {
 public:
  static executor& get() {
    static executor* e = new executor;  // never destroyed: its threads may outlive main
    return *e;
  }

  void enqueue(strand* s, task t) {
    std::lock_guard<std::mutex> g(mu_);
    s->queue.push_back(std::move(t));
    make_ready(s);
  }

 private:
  executor() {
    for (int i = 0; i < 2; ++i)
      std::thread([this] { run(); }).detach();
  }

  // Under mu_.
  void make_ready(strand* s) {
    if (s->scheduled || s->queue.empty()) return;
    s->scheduled = true;
    ready_[s->priority == stream_priority::high ? 1 : 0].push_back(s);
    cv_.notify_one();
  }

  void open_gate(gate& g) {
    std::lock_guard<std::mutex> lk(mu_);
    g.open = true;
    for (strand* s : g.held)
      make_ready(s);
    g.held.clear();
  }

  void run() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return !ready_[0].empty() || !ready_[1].empty(); });
      auto& list = ready_[1].empty() ? ready_[0] : ready_[1];
      strand* s = list.front();
      list.pop_front();
      task& front = s->queue.front();
      if (front.wait_for && !front.wait_for->open) {
        front.wait_for->held.push_back(s);
        s->scheduled = false;
        continue;
      }
      task t = std::move(front);
      s->queue.pop_front();
      const status before = s->failure;
      lk.unlock();
      status thrown;
      // After a failure the stream's work is skipped, as a CUDA stream's is after an error;
      // gates still open so that nothing waits forever.
      if (t.fn && before.is_ok()) {
        try {
          t.fn();
        } catch (const std::exception& e) {
          thrown = status{errc::internal, std::string{"emulated device work failed: "} + e.what()};
        }
      }
      if (t.after) t.after(before);
      if (t.opens) open_gate(*t.opens);
      lk.lock();
      if (!thrown.is_ok() && s->failure.is_ok()) s->failure = thrown;
      s->scheduled = false;
      make_ready(s);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<strand*> ready_[2];  // [stream_priority]
};

struct device_streams {
  std::vector<strand*> pool[2];  // [stream_priority]
  strand* blocking = nullptr;
};

device_streams& streams_of(int index) {
  static std::mutex mu;
  static auto* all = new std::vector<device_streams>();
  std::lock_guard<std::mutex> g(mu);
  if (all->empty()) all->resize(static_cast<std::size_t>(device_count()));
  auto& d = (*all)[static_cast<std::size_t>(index)];
  if (!d.blocking) {
    for (int p = 0; p < 2; ++p)
      for (std::size_t i = 0; i < streams_per_priority(); ++i)
        d.pool[p].push_back(new strand{index, static_cast<stream_priority>(p), {}, false, {}});
    d.blocking = new strand{index, stream_priority::normal, {}, false, {}};
  }
  return d;
}

strand* strand_of(const device_stream& s, const char* what) {
  if (!s.valid()) throw error{errc::invalid_argument, std::string{what} + ": no stream"};
  return static_cast<strand*>(stream_access::handle(s));
}

void enqueue(const device_stream& s, const char* what, std::function<void()> fn) {
  executor::get().enqueue(strand_of(s, what), task{std::move(fn), nullptr, nullptr, nullptr});
}

[[noreturn]] void invalid(const char* what, const std::string& why) {
  throw error{errc::invalid_argument, std::string{what} + ": " + why};
}

void need(const char* what, const void* p, const char* name) {
  if (!p) invalid(what, std::string{"null "} + name);
}

constexpr std::uintptr_t device_tag = std::uintptr_t{1} << 62;

template <class T>
T* real(T* p) noexcept {
  // Emulated device memory is host memory behind a non-canonical address (bit 62), so that a
  // host access to it faults as on a GPU; the casts are the emulation.
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  return reinterpret_cast<T*>(reinterpret_cast<std::uintptr_t>(p) & ~device_tag);
}

class host_core final : public pool_core {
 public:
  host_core(std::size_t max_cached, bool device_memory)
      : pool_core(max_cached), tag_(device_memory ? device_tag : 0) {}
  ~host_core() override { free_cache(); }

 protected:
  void* system_alloc(std::size_t cap) override {
    // 256-byte aligned, as cudaMalloc's memory is.
    void* p = std::aligned_alloc(256, (cap + 255) / 256 * 256);
    if (!p) throw error{errc::internal, "emulated device memory: out of host memory"};
    if (tag_) {
      std::lock_guard<std::mutex> g(mu_);
      try {
        blocks_.insert(p);
      } catch (...) {
        std::free(p);
        throw;
      }
    }
    // NOLINTNEXTLINE(performance-no-int-to-ptr): the tag bit, as in real() above
    return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) | tag_);
  }
  void system_free(void* p, std::size_t) noexcept override {
    if (tag_) {
      std::lock_guard<std::mutex> g(mu_);
      blocks_.erase(real(p));
    }
    std::free(real(p));
  }

 private:
  std::uintptr_t tag_;
  // The untagged addresses of the blocks, so that leak checkers still find them referenced.
  std::mutex mu_;
  std::unordered_set<void*> blocks_;
};

}  // namespace

result<int> parse_setting(const char* value) {
  if (!value || !*value) return 0;
  const std::string v{value};
  int n = 0;
  bool digits = v.size() <= 3;
  for (char c : v) {
    digits = digits && c >= '0' && c <= '9';
    if (digits) n = n * 10 + (c - '0');
  }
  if (digits && n <= max_emulated_devices) return n;
  return status{errc::invalid_argument,
                "KVACTOR_EMULATE_CUDA=\"" + v + "\" is not a number of emulated CUDA devices: " +
                    "expected a whole number from 1 to " + std::to_string(max_emulated_devices) +
                    ", or 0 or empty for none"};
}

namespace {
// Read once: whether devices are emulated must not change while a process runs.
const result<int>& setting() {
  static const result<int> s = parse_setting(std::getenv("KVACTOR_EMULATE_CUDA"));
  return s;
}
}  // namespace

void check_setting() {
  if (!setting()) throw error{setting().error()};
}

bool active() {
  check_setting();
  static const bool on = *setting() > 0 && native_device_count() == 0;
  return on;
}

int device_count() {
  check_setting();
  return *setting();
}

void check_device(device d) {
  if (d.is_cpu()) throw error{errc::invalid_argument, d.to_string() + " is not a CUDA device"};
  if (d.index() < 0 || d.index() >= device_count())
    throw error{errc::invalid_argument, d.to_string() + " does not exist: this process has " +
                                            std::to_string(device_count()) +
                                            " emulated CUDA device" +
                                            (device_count() == 1 ? "" : "s")};
}

std::string device_name(device d) {
  check_device(d);
  return "kvactor emulated device " + std::to_string(d.index()) + " (host memory, CPU kernels)";
}

device_stream get_stream(device d, stream_priority p, std::size_t hint) {
  check_device(d);
  const auto& pool = streams_of(d.index()).pool[p == stream_priority::high ? 1 : 0];
  return stream_access::make(pool[hint % pool.size()], d.index(), p);
}

device_stream blocking_stream(device d) {
  check_device(d);
  return stream_access::make(streams_of(d.index()).blocking, d.index(), stream_priority::normal);
}

int native_priority(const device_stream& s) {
  // CUDA's convention: lower is more urgent.
  return strand_of(s, "native_priority")->priority == stream_priority::high ? -1 : 0;
}

void enqueue_callback(const device_stream& s, std::function<void(const status&)> fn) {
  strand* st = strand_of(s, "enqueue_callback");
  if (!fn) throw error{errc::invalid_argument, "enqueue_callback: empty function"};
  auto cb = std::make_shared<std::function<void(const status&)>>(std::move(fn));
  executor::get().enqueue(
      st, task{nullptr, [cb](const status& st) { post_callback([cb, st] { (*cb)(st); }); }, nullptr,
               nullptr});
}

void stream_wait(const device_stream& waiter, const device_stream& on) {
  strand* w = strand_of(waiter, "stream_wait");
  strand* o = strand_of(on, "stream_wait");
  if (w == o) return;
  auto gt = std::make_shared<gate>();
  executor::get().enqueue(o, task{nullptr, nullptr, nullptr, gt});
  executor::get().enqueue(w, task{nullptr, nullptr, gt, nullptr});
}

void synchronize(const device_stream& s) {
  strand* st = strand_of(s, "synchronize");
  auto done = std::make_shared<std::promise<status>>();
  auto f = done->get_future();
  executor::get().enqueue(
      st, task{nullptr, [done](const status& e) { done->set_value(e); }, nullptr, nullptr});
  const status e = f.get();
  if (!e.is_ok()) throw error{e};
}

std::shared_ptr<pool_core> make_memory_core(std::size_t max_cached, bool device_memory) {
  return std::make_shared<host_core>(max_cached, device_memory);
}

// ---- kernels: the CPU kernels, run in stream order ----

void sum_async(const device_stream& s, dtype t, void* dst, const void* const* srcs, std::size_t k,
               std::size_t n) {
  const char* what = "sum_async";
  strand_of(s, what);
  if (k == 0 || k > device_kernels::max_sum_inputs)
    invalid(what, "k = " + std::to_string(k) + " sources (1.." +
                      std::to_string(device_kernels::max_sum_inputs) + " allowed)");
  if (n == 0) return;
  need(what, dst, "destination");
  need(what, srcs, "source list");
  for (std::size_t j = 0; j < k; ++j)
    need(what, srcs[j], "source");
  std::vector<const void*> in;
  for (std::size_t j = 0; j < k; ++j)
    in.push_back(real(srcs[j]));
  enqueue(s, what, [t, dst = real(dst), in = std::move(in), n] {
    kernels::sum(t, dst, in.data(), in.size(), 0, n);
  });
}

void fill_async(const device_stream& s, dtype t, void* dst, double value, std::size_t n) {
  const char* what = "fill_async";
  strand_of(s, what);
  if (n == 0) return;
  need(what, dst, "destination");
  enqueue(s, what, [t, dst, value, n] { kernels::fill(t, real(dst), value, 0, n); });
}

void cast_async(const device_stream& s, dtype from, const void* src, dtype to, void* dst,
                std::size_t n) {
  const char* what = "cast_async";
  strand_of(s, what);
  if (n == 0) return;
  need(what, src, "source");
  need(what, dst, "destination");
  enqueue(s, what, [=] { kernels::cast(from, real(src), to, real(dst), 0, n); });
}

void copy_async(const device_stream& s, void* dst, device dst_dev, const void* src, device src_dev,
                std::size_t bytes) {
  const char* what = "copy_async";
  strand_of(s, what);
  if (bytes) {
    need(what, dst, "destination");
    need(what, src, "source");
  }
  const device sdev = s.device();
  if (dst_dev.is_cpu() && src_dev.is_cpu()) invalid(what, "cpu to cpu is not a device copy");
  if (src_dev.is_cpu() || dst_dev.is_cpu()) {
    const device cuda_side = src_dev.is_cpu() ? dst_dev : src_dev;
    if (cuda_side != sdev)
      invalid(what,
              "between cpu and " + cuda_side.to_string() + " on a stream of " + sdev.to_string());
  } else if (sdev != src_dev && sdev != dst_dev) {
    invalid(what, "from " + src_dev.to_string() + " to " + dst_dev.to_string() +
                      " on a stream of " + sdev.to_string());
  }
  if (!src_dev.is_cpu()) check_device(src_dev);
  if (!dst_dev.is_cpu()) check_device(dst_dev);
  if (!bytes) return;
  enqueue(s, what, [=] { std::memmove(real(dst), real(src), bytes); });
}

void quantize_async(const device_stream& s, const compression::params& p, const float* grad,
                    float* residual, std::uint32_t* out, std::size_t n) {
  const char* what = "quantize_async";
  strand_of(s, what);
  if (n == 0) return;
  need(what, grad, "gradient");
  need(what, out, "output");
  if (p.type == compression::kind::none) {
    enqueue(s, what, [=] { std::memcpy(real(out), real(grad), n * sizeof(float)); });
    return;
  }
  need(what, residual, "residual");
  const std::size_t w = compression::words(p.type, n);
  enqueue(s, what,
          [=] { compression::quantize(p, real(grad), real(residual), real(out), n, 0, w); });
}

void dequantize_async(const device_stream& s, const compression::params& p, const std::uint32_t* in,
                      float* out, std::size_t n, bool add) {
  const char* what = add ? "dequantize_add_async" : "dequantize_async";
  strand_of(s, what);
  if (n == 0) return;
  need(what, in, "input");
  need(what, out, "output");
  if (p.type == compression::kind::none) {
    enqueue(s, what, [=] {
      if (add)
        kernels::accumulate(dtype::float32, real(out), real(in), 0, n);
      else
        std::memcpy(real(out), real(in), n * sizeof(float));
    });
    return;
  }
  const std::size_t w = compression::words(p.type, n);
  enqueue(s, what, [=] {
    if (add)
      compression::dequantize_add(p, real(in), real(out), n, 0, w);
    else
      compression::dequantize(p, real(in), real(out), n, 0, w);
  });
}

namespace {

void check_update(const char* what, dtype t, const void* weight, const void* grad,
                  const float* master) {
  need(what, weight, "weight");
  need(what, grad, "gradient");
  if (master && t != dtype::float16 && t != dtype::bfloat16)
    invalid(what, std::string{"a float32 master copy is for float16/bfloat16 weights, not "} +
                      to_string(t));
}

// The multi-precision update: the gradient widened, the float32 update on master, the weight
// rounded from it (what the device kernels do in one pass).
template <class Update>
void with_master(dtype t, void* weight, const void* grad, float* master, std::size_t n,
                 Update update) {
  std::vector<float> g(n);
  kernels::cast(t, grad, dtype::float32, g.data(), 0, n);
  update(master, g.data());
  kernels::cast(dtype::float32, master, t, weight, 0, n);
}

}  // namespace

void sgd_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mom,
                      const kernels::sgd_params& p, std::size_t n, float* master) {
  const char* what = "sgd_update_async";
  strand_of(s, what);
  if (n == 0 || !is_floating(t)) return;
  check_update(what, t, weight, grad, master);
  enqueue(s, what,
          [=, weight = real(weight), grad = real(grad), mom = real(mom), master = real(master)] {
            if (!master) return kernels::sgd_update(t, weight, grad, mom, p, 0, n);
            with_master(t, weight, grad, master, n, [&](float* w, const float* g) {
              kernels::sgd_update(dtype::float32, w, g, mom, p, 0, n);
            });
          });
}

void adam_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mean,
                       void* var, const kernels::adam_params& p, std::size_t n, float* master) {
  const char* what = "adam_update_async";
  strand_of(s, what);
  if (n == 0 || !is_floating(t)) return;
  check_update(what, t, weight, grad, master);
  need(what, mean, "mean");
  need(what, var, "var");
  enqueue(s, what,
          [=, weight = real(weight), grad = real(grad), mean = real(mean), var = real(var),
           master = real(master)] {
            if (!master) return kernels::adam_update(t, weight, grad, mean, var, p, 0, n);
            with_master(t, weight, grad, master, n, [&](float* w, const float* g) {
              kernels::adam_update(dtype::float32, w, g, mean, var, p, 0, n);
            });
          });
}

}  // namespace kvactor::detail::emu

// bench_small_ops: the cost of one small operation (a 4-byte key, one float32 element).
//
//   bench_small_ops [--quick]
//
// (a) Synchronous round trips: kv.pushpull(key, value, out).wait(), repeated (full mode: 20
//     blocks of 1,000 = 20k). Figures: median and p99 latency in µs against the absolute
//     target of 20 µs (lower is better). Context, measured in the same run, in blocks
//     interleaved with the store's (A,B,C,...,A,B,C,...):
//       - raw CAF: a user thread's round trip into CAF — anon_send to an event-based actor
//         that completes what the thread waits on: a kvactor::promise (the store's futures:
//         spin ~30 µs, then park), a std::promise (parks at once), or an atomic flag it spins
//         on;
//       - raw CAF with other scheduler settings (the store gives its own system only
//         scheduler.max-threads), and the store itself on such a system through the public
//         embedding API kvactor::create(caf::actor_system&, ...), so a setting's effect on the
//         store is measured, not inferred;
//       - the store with options.worker_threads = 1 (the only CAF knob the options have).
//     Every latency figure carries cpu_us_per_op: process CPU time over the path's blocks
//     divided by its operations (what the latency costs in spinning and polling).
// (b) Pipelined: 1,000 pushpulls back to back, then kv.wait_all(); ops/s (full mode: 8 blocks
//     of 4 batches). Limit: the rate of a raw CAF event-based request/response loop — an actor
//     keeping 1 or 8 requests outstanding to another event-based actor, 1,000 requests,
//     started and awaited from the user thread like the store's batch — the better of the two
//     windows (limit_path says which), same run, interleaved. The caf_reqresp window=1 line
//     also gives the actor<->actor round trip (rtt_us).
//
// Quiet gaps. A CAF 0.17 worker with default settings keeps polling for ~55 ms after its last
// message (100 busy polls, then 500 polls ~105 µs apart: a 50 µs sleep plus timer slack)
// before it parks. So, in full mode, every block starts after a 70 ms sleep and one untimed
// call: no block runs while another system's workers poll, and each path pays only for its
// own system's behaviour.
//
// Every CAF system here has scheduler.max-threads = hardware threads, as the store's own,
// unless its name says otherwise.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <kvactor/caf.hpp>
#include <kvactor/kvstore.hpp>

#include <time.h>

#include <atomic>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace {

struct flag_ref {
  std::atomic<int>* flag;
};
using kv_promise_ptr = std::shared_ptr<kvactor::promise<void>>;
using std_promise_ptr = std::shared_ptr<std::promise<void>>;

}  // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flag_ref)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kv_promise_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std_promise_ptr)

namespace {

using namespace kvbench;

using ping_atom = caf::atom_constant<caf::atom("b_ping")>;
using echo_atom = caf::atom_constant<caf::atom("b_echo")>;
using run_atom = caf::atom_constant<caf::atom("b_run")>;

std::size_t hardware_threads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

// ---- raw CAF actors ----

// Answers a request, or completes the user thread's promise / flag.
caf::behavior echo_actor(caf::event_based_actor*) {
  return {
      [](ping_atom, float x) { return x + 1.0f; },
      [](echo_atom, const kv_promise_ptr& p) { p->set_value(); },
      [](echo_atom, const std_promise_ptr& p) { p->set_value(); },
      [](echo_atom, flag_ref f) { f.flag->store(1, std::memory_order_release); },
  };
}

// Issues n requests to a server with `window` outstanding, then completes the promise.
struct driver_state {
  caf::actor server;
  int to_send = 0;
  int to_receive = 0;
  kv_promise_ptr done;
  static inline const char* name = "bench.driver";
};

void driver_issue(caf::stateful_actor<driver_state>* self) {
  --self->state.to_send;
  self->request(self->state.server, caf::infinite, ping_atom::value, 1.0f).then([self](float) {
    if (--self->state.to_receive == 0) {
      auto done = std::move(self->state.done);
      done->set_value();
      return;
    }
    if (self->state.to_send > 0) driver_issue(self);
  });
}

caf::behavior driver_actor(caf::stateful_actor<driver_state>* self, caf::actor server) {
  self->state.server = std::move(server);
  return {
      [self](run_atom, int n, int window, const kv_promise_ptr& done) {
        self->state.to_send = n;
        self->state.to_receive = n;
        self->state.done = done;
        for (int i = 0; i < window && self->state.to_send > 0; ++i)
          driver_issue(self);
      },
  };
}

// ---- CAF configurations ----

struct variant {
  std::string name;  // as printed in "config=..."
  std::function<void(caf::actor_system_config&)> apply;
};

std::vector<variant> variants() {
  const std::size_t hw = hardware_threads();
  auto base = [hw](caf::actor_system_config& c) { c.set("scheduler.max-threads", hw); };
  return {
      {"default", base},
      {"moderate-poll-attempts=0",
       [base](caf::actor_system_config& c) {
         base(c);
         c.set("work-stealing.moderate-poll-attempts", std::size_t{0});
       }},
      {"aggressive-poll-attempts=10000,moderate-poll-attempts=0",
       [base](caf::actor_system_config& c) {
         base(c);
         c.set("work-stealing.aggressive-poll-attempts", std::size_t{10000});
         c.set("work-stealing.moderate-poll-attempts", std::size_t{0});
       }},
      {"moderate-sleep-duration=1us",
       [base](caf::actor_system_config& c) {
         base(c);
         c.set("work-stealing.moderate-sleep-duration",
               caf::timespan{std::chrono::microseconds(1)});
       }},
      {"max-threads=1,moderate-poll-attempts=0",
       [](caf::actor_system_config& c) {
         c.set("scheduler.max-threads", std::size_t{1});
         c.set("work-stealing.moderate-poll-attempts", std::size_t{0});
       }},
      {"policy=sharing",
       [base](caf::actor_system_config& c) {
         base(c);
         c.set("scheduler.policy", caf::atom("sharing"));
       }},
  };
}

// One CAF system with an echo server, a driver, and a kvactor store running on it.
struct system_under_test {
  std::string name;
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor echo;
  caf::actor driver;
  kvactor::kvstore kv;  // on sys
  kvactor::tensor value = kvactor::tensor::ones({1});
  kvactor::tensor out = kvactor::tensor::zeros({1});

  explicit system_under_test(const variant& v) : name(v.name) {
    cfg = std::make_unique<caf::actor_system_config>();
    v.apply(*cfg);
    kvactor::add_to_config(*cfg);
    sys = std::make_unique<caf::actor_system>(*cfg);
    echo = sys->spawn(echo_actor);
    driver = sys->spawn(driver_actor, echo);
    kv = kvactor::create(*sys, "local");
    kv.init(0, value).get();
  }
  ~system_under_test() {
    kv = kvactor::kvstore{};  // waits for its operations, stops its actors
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(driver, caf::exit_reason::user_shutdown);
    echo = nullptr;
    driver = nullptr;
    sys.reset();
  }
};

// ---- round trips, seconds each ----

double rtt_kv_future(const caf::actor& echo) {
  auto p = std::make_shared<kvactor::promise<void>>();
  auto f = p->get_future();
  const auto t0 = clock::now();
  caf::anon_send(echo, echo_atom::value, p);
  f.wait();
  return seconds_since(t0);
}

double rtt_std_future(const caf::actor& echo) {
  auto p = std::make_shared<std::promise<void>>();
  auto f = p->get_future();
  const auto t0 = clock::now();
  caf::anon_send(echo, echo_atom::value, p);
  f.wait();
  return seconds_since(t0);
}

double rtt_spin(const caf::actor& echo) {
  std::atomic<int> flag{0};
  const auto t0 = clock::now();
  caf::anon_send(echo, echo_atom::value, flag_ref{&flag});
  while (flag.load(std::memory_order_acquire) == 0) {
  }
  return seconds_since(t0);
}

double rtt_store(kvactor::kvstore& kv, const kvactor::tensor& v, const kvactor::tensor& out) {
  const auto t0 = clock::now();
  kv.pushpull(0, v, out).wait();
  return seconds_since(t0);
}

// Seconds for n requests by the driver with `window` outstanding (user thread starts, waits).
double caf_loop(const caf::actor& driver, int n, int window) {
  auto p = std::make_shared<kvactor::promise<void>>();
  auto f = p->get_future();
  const auto t0 = clock::now();
  caf::anon_send(driver, run_atom::value, n, window, p);
  f.wait();
  return seconds_since(t0);
}

double store_batch(kvactor::kvstore& kv, int n, const kvactor::tensor& v,
                   const kvactor::tensor& out) {
  const auto t0 = clock::now();
  for (int i = 0; i < n; ++i)
    kv.pushpull(0, v, out);
  kv.wait_all();
  return seconds_since(t0);
}

// A measured path: `once` runs one round trip (or one batch) and returns its seconds.
struct path {
  path(std::string name, std::function<double()> fn, int ops = 1)
      : case_name(std::move(name)), once(std::move(fn)), ops_per_call(ops) {}

  std::string case_name;
  std::function<double()> once;
  int ops_per_call = 1;
  std::vector<double> samples;  // seconds per call
  double cpu_s = 0;             // process CPU time spent in this path's blocks
  std::size_t calls = 0;
};

double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Runs blocks of `block` calls per path, round robin over the paths, `rounds` times; before
// each block it sleeps `gap`, so every CAF system with default settings has parked its
// workers (they poll for ~55 ms after their last message) and no block runs beside another
// system's polling.
void run_blocks(std::vector<path>& paths, int rounds, int block, std::chrono::milliseconds gap) {
  for (int r = 0; r < rounds; ++r) {
    for (auto& p : paths) {
      if (gap.count() > 0) std::this_thread::sleep_for(gap);
      p.once();  // untimed: the first call after the gap wakes parked threads
      const double c0 = process_cpu_s();
      for (int i = 0; i < block; ++i)
        p.samples.push_back(p.once());
      p.cpu_s += process_cpu_s() - c0;
      p.calls += std::size_t(block);
    }
  }
}

double cpu_us_per_op(const path& p) {
  return p.cpu_s * 1e6 / double(p.calls * std::size_t(p.ops_per_call));
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--help" || a == "-h") {
      std::cerr << "usage: bench_small_ops [--quick]\n";
      return 0;
    } else {
      std::cerr << "bench_small_ops: unknown argument " << a << "\n";
      return 2;
    }
  }
  // Full: 20 blocks of 1,000 synchronous round trips per path (20k), 8 blocks of 4 batches of
  // 1,000 pipelined ops (32 batches); 70 ms quiet gap before each block.
  const int sync_rounds = quick ? 2 : 20;
  const int sync_block = quick ? 100 : 1000;
  const int rate_rounds = quick ? 2 : 8;
  const int rate_block = quick ? 2 : 4;
  const int batch_ops = 1000;
  const std::chrono::milliseconds gap{quick ? 0 : 70};
  const std::size_t hw = hardware_threads();
  std::cerr << "bench_small_ops: " << (quick ? "quick" : "full") << " mode, " << hw
            << " hardware threads\n";
  const auto t_start = clock::now();

  // The subject: a store as a user creates it.
  kvactor::kvstore kv = kvactor::create("local");
  auto value = kvactor::tensor::ones({1});
  auto out = kvactor::tensor::zeros({1});
  kv.init(0, value).get();
  kvactor::options one_worker;
  one_worker.worker_threads = 1;
  kvactor::kvstore kv1 = kvactor::create("local", one_worker);
  kv1.init(0, value).get();

  // Raw CAF systems (and a store on each), one per scheduler variant.
  std::vector<std::unique_ptr<system_under_test>> systems;
  for (const auto& v : variants())
    systems.push_back(std::make_unique<system_under_test>(v));
  system_under_test& def = *systems.front();

  // ---- (a) synchronous round trips ----
  std::vector<path> sync;
  sync.push_back({"pushpull_sync", [&] { return rtt_store(kv, value, out); }});
  sync.push_back(
      {"caf_user_rtt config=default wait=kvactor_future", [&] { return rtt_kv_future(def.echo); }});
  sync.push_back(
      {"caf_user_rtt config=default wait=std_future", [&] { return rtt_std_future(def.echo); }});
  sync.push_back({"caf_user_rtt config=default wait=spin", [&] { return rtt_spin(def.echo); }});
  sync.push_back(
      {"pushpull_sync options.worker_threads=1", [&] { return rtt_store(kv1, value, out); }});
  for (std::size_t i = 1; i < systems.size(); ++i) {
    auto* s = systems[i].get();
    sync.push_back({"caf_user_rtt config=" + s->name + " wait=kvactor_future",
                    [s] { return rtt_kv_future(s->echo); }});
    sync.push_back({"pushpull_sync store_on_caf_system config=" + s->name,
                    [s] { return rtt_store(s->kv, s->value, s->out); }});
  }
  run_blocks(sync, sync_rounds, sync_block, gap);

  for (const auto& p : sync) {
    const double med = quantile(p.samples, 0.5) * 1e6, p99 = quantile(p.samples, 0.99) * 1e6;
    const std::string n = std::to_string(p.samples.size());
    const std::string cpu = json_number(cpu_us_per_op(p));
    if (p.case_name == "pushpull_sync") {
      emit(figure{"small_ops",
                  "pushpull_sync 4B median",
                  med,
                  "us",
                  20.0,
                  1.0,
                  true,
                  {{"n", n}, {"cpu_us_per_op", cpu}}});
      emit(figure{
          "small_ops", "pushpull_sync 4B p99", p99, "us", 20.0, std::nullopt, true, {{"n", n}}});
    } else {
      emit(figure{"small_ops",
                  p.case_name + " median",
                  med,
                  "us",
                  std::nullopt,
                  std::nullopt,
                  true,
                  {{"p90_us", json_number(quantile(p.samples, 0.9) * 1e6)},
                   {"p99_us", json_number(p99)},
                   {"cpu_us_per_op", cpu},
                   {"n", n}}});
    }
  }

  // ---- actor<->actor request/response and (b) pipelined ----
  std::vector<path> rates;
  rates.push_back(
      {"pushpull_pipelined", [&] { return store_batch(kv, batch_ops, value, out); }, batch_ops});
  for (auto& sp : systems) {
    auto* s = sp.get();
    for (int w : {1, 8})
      rates.push_back({"caf_reqresp config=" + s->name + " window=" + std::to_string(w),
                       [s, w, batch_ops] { return caf_loop(s->driver, batch_ops, w); }, batch_ops});
    if (s != &def)
      rates.push_back({"pushpull_pipelined store_on_caf_system config=" + s->name,
                       [s, batch_ops] { return store_batch(s->kv, batch_ops, s->value, s->out); },
                       batch_ops});
  }
  rates.push_back({"pushpull_pipelined options.worker_threads=1",
                   [&] { return store_batch(kv1, batch_ops, value, out); }, batch_ops});
  run_blocks(rates, rate_rounds, rate_block, gap);

  auto rate_of = [](const path& p) { return p.ops_per_call / median(p.samples); };
  const double w1 = rate_of(rates[1]), w8 = rate_of(rates[2]);  // default system
  const bool w8_wins = w8 >= w1;
  for (const auto& p : rates) {
    const double r = rate_of(p);
    const std::string cpu = json_number(cpu_us_per_op(p));
    if (p.case_name == "pushpull_pipelined") {
      emit(figure{"small_ops",
                  "pushpull_pipelined n=1000 4B",
                  r,
                  "ops/s",
                  std::max(w1, w8),
                  0.3,
                  false,
                  {{"limit_path", json_string(std::string{"caf_reqresp config=default window="} +
                                              (w8_wins ? "8" : "1"))},
                   {"batches", std::to_string(p.samples.size())},
                   {"cpu_us_per_op", cpu}}});
    } else {
      figure f{"small_ops",  p.case_name,  r,     "ops/s",
               std::nullopt, std::nullopt, false, {{"cpu_us_per_op", cpu}}};
      if (p.case_name.find("window=1") != std::string::npos)
        f.extra.push_back({"rtt_us", json_number(1e6 / r)});
      emit(f);
    }
  }

  kv = kvactor::kvstore{};
  kv1 = kvactor::kvstore{};
  systems.clear();
  std::cerr << "bench_small_ops: " << seconds_since(t_start) << " s\n";
  return 0;
}

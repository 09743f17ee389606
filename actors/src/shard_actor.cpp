// The shard actor and the ways into its core (shard_gate.hpp): the actor's handlers, an op
// delivered on the caller's thread when the shard is idle, and a reducer thread going on with
// the op whose step it finished.
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "caf_glue.hpp"
#include "kvactor/detail/timeline.hpp"
#include "reduction.hpp"
#include "shard_gate.hpp"

namespace kvactor::detail {

namespace {

// How long the gate's holder yields, after helping with a step's chunks, for the chunks other
// threads still run, before it sleeps until they are done: about one chunk of a mid-sized
// step. Waking up again would cost it more than that on a busy machine.
constexpr auto step_spin = std::chrono::microseconds(30);

// op::step_wait.
constexpr int nobody_waits = 0, holder_spins = 1, step_finished = 2, holder_sleeps = 3;

// What the core's hooks reach: the gate, the actor (weakly: the pool's completions must not
// keep a stopped shard alive; set once, right after the spawn, before any op can arrive) and
// the place where the gate's holder sleeps for a step's last chunks (one holder at a time).
}  // namespace

struct shard_link {
  shard_gate gate;
  caf::actor_addr addr;
  std::mutex mu;
  std::condition_variable cv;

  template <class... Ts>
  void post(Ts&&... xs) {
    if (auto me = caf::actor_cast<caf::actor>(addr)) {
      gate.note_sent();
      caf::anon_send(me, std::forward<Ts>(xs)...);
    }
  }

  // The last chunk of o's step is done (any thread). The holder that waits goes on itself;
  // else this thread goes on with o if it may take the gate, else the actor does.
  void step_done(std::int64_t key_id, op* o) {
    const int was = o->step_wait.exchange(step_finished, std::memory_order_acq_rel);
    if (was == holder_spins) return;
    if (was == holder_sleeps) {
      std::lock_guard<std::mutex> g(mu);
      cv.notify_all();
      return;
    }
    go_on(key_id, o);
  }

  // o's step is done and nobody waits for it: this thread goes on with o if it may take the
  // gate, else the actor does. o stays alive until the shard handled its step_done.
  void go_on(std::int64_t key_id, op* o) {
    if (auto h = gate.try_enter())
      if (h.core().step_done_here(key_id, *o)) return;
    post(step_done_atom::value, key_id);
  }

  // The holder helped with o's step and no chunk is left unclaimed: true once the others are
  // done too (a short yield loop, then a sleep; the pool's threads never need the gate).
  bool await_step(op& o) {
    const auto until = std::chrono::steady_clock::now() + step_spin;
    while (o.step_wait.load(std::memory_order_acquire) == holder_spins) {
      if (std::chrono::steady_clock::now() > until) {
        std::unique_lock<std::mutex> lk(mu);
        int spinning = holder_spins;
        if (o.step_wait.compare_exchange_strong(spinning, holder_sleeps, std::memory_order_acq_rel))
          cv.wait(lk, [&] { return o.step_wait.load(std::memory_order_acquire) == step_finished; });
        break;
      }
      std::this_thread::yield();
    }
    return true;
  }
};

namespace {

struct shard_state {
  std::shared_ptr<shard_link> link;
  static inline const char* name = "kvactor.shard";
};

caf::behavior shard(caf::stateful_actor<shard_state>* self, std::shared_ptr<shard_link> link) {
  self->state.link = std::move(link);
  auto* g = &self->state.link->gate;
  return {
      [g](op_ptr& o) {
        if (timeline::enabled()) timeline::name_thread("actor", 2);
        auto h = g->enter();
        g->note_taken();
        h.core().receive(std::move(o));
      },
      [g](process_atom) {
        auto h = g->enter();
        g->note_taken();
        h.core().process();
      },
      [g](step_done_atom, std::int64_t key_id) {
        auto h = g->enter();
        g->note_taken();
        h.core().step_done(key_id);
      },
      [g](fence_atom, const shard_fence& f) {
        auto h = g->enter();
        g->note_taken();
        h.core().receive_fence(f);
      },
  };
}

// The hooks live in the core, which the link owns: they hold it by a plain pointer where
// the store guarantees it outlives the caller (the actor's handlers; the pool, which the
// store stops before it drops its shards), else weakly (device streams, reducer graphs).
shard_hooks make_hooks(const std::shared_ptr<shard_link>& link, thread_pool* pool,
                       reduction_engine* reduction) {
  shard_hooks h;
  shard_link* l = link.get();
  h.schedule_process = [l] { l->post(process_atom::value); };
  h.mailbox_empty = [l] { return l->gate.quiet(); };
  h.run_parallel = [pool, l](std::size_t n, std::function<void(std::size_t)> chunk, int priority,
                             std::int64_t key_id, bool help, op* o) {
    o->step_wait.store(help ? holder_spins : nobody_waits, std::memory_order_relaxed);
    auto job = pool->submit(
        n, std::move(chunk), [l, key_id, o] { l->step_done(key_id, o); }, priority);
    if (!help) return false;
    pool->help(job);
    return l->await_step(*o);
  };
  // The op stays alive until the shard has handled step_done (the key's current op), and the
  // store outlives its calls' ops, so recording into it first is safe.
  h.step_done_from = [weak = std::weak_ptr<shard_link>(link)](std::int64_t key_id, op* o,
                                                              const status& s) {
    if (!s.is_ok() && !o->chunk_failed.load(std::memory_order_acquire)) {
      o->chunk_error = s.message();
      o->chunk_code = s.code();
      o->chunk_failed.store(true, std::memory_order_release);
    }
    // On the device callback thread or a reducer's: going on here saves a hand-off to the
    // actor (and the thread is free to enqueue device work; it never waits for a callback).
    if (auto me = weak.lock()) me->go_on(key_id, o);
  };
  if (reduction) {
    h.reduce_on_device = reduction->shape().type() != topology::kind::ring;
    h.reduce_is_flat = reduction->shape().type() == topology::kind::flat;
    h.reduce = [reduction, done = h.step_done_from](std::vector<tensor> values, tensor target,
                                                    std::int64_t key_id, op* o) {
      reduction->reduce(
          std::move(values), std::move(target),
          [done, key_id, o](const status& s) { done(key_id, o, s); }, key_id, o->priority);
    };
  }
  return h;
}

}  // namespace

shard_handle spawn_shard(caf::actor_system& sys, thread_pool* pool, std::size_t width,
                         std::size_t threshold_bytes, reduction_engine* reduction) {
  auto link = std::make_shared<shard_link>();
  link->gate.set_core(
      std::make_unique<shard_core>(make_hooks(link, pool, reduction), threshold_bytes, width));
  shard_handle s;
  s.link = link;
  s.actor = sys.spawn(shard, link);
  link->addr = s.actor.address();
  return s;
}

void deliver(const shard_handle& s, op_ptr o, bool here) {
  shard_gate& g = s.link->gate;
  if (here)
    if (auto h = g.try_enter())
      if (g.quiet() && h.core().receive_here(o)) return;
  g.note_sent();
  caf::anon_send(s.actor, std::move(o));
}

void deliver_fence(const shard_handle& s, const shard_fence& f) {
  s.link->gate.note_sent();
  caf::anon_send(s.actor, fence_atom::value, f);
}

}  // namespace kvactor::detail

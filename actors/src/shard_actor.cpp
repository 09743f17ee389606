#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "caf_glue.hpp"
#include "reduction.hpp"
#include "shard_core.hpp"

namespace kvactor::detail {

namespace {

struct shard_state {
  std::unique_ptr<shard_core> core;
  static inline const char* name = "kvactor.shard";
};

caf::behavior shard(caf::stateful_actor<shard_state>* self, thread_pool* pool, std::size_t width,
                    std::size_t threshold, reduction_engine* reduction) {
  shard_core::hooks h;
  h.schedule_process = [self] { self->send(self, process_atom::value); };
  h.mailbox_empty = [self] { return self->mailbox().empty(); };
  // Weak: the pool's completions must not keep a stopped shard alive.
  caf::actor_addr weak_self = self->address();
  h.run_parallel = [pool, weak_self](std::size_t n, std::function<void(std::size_t)> chunk,
                                     int priority, std::int64_t key_id, bool help) {
    auto job = pool->submit(
        n, std::move(chunk),
        [weak_self, key_id] {
          if (auto me = caf::actor_cast<caf::actor>(weak_self))
            caf::anon_send(me, step_done_atom::value, key_id);
        },
        priority);
    if (help) pool->help(job);
  };
  // The op stays alive until the shard has handled step_done (the key's current op), and the
  // store outlives its calls' ops, so recording into it first is safe.
  h.step_done_from = [weak_self](std::int64_t key_id, op* o, const status& s) {
    if (!s.is_ok() && !o->chunk_failed.load(std::memory_order_acquire)) {
      o->chunk_error = s.message();
      o->chunk_code = s.code();
      o->chunk_failed.store(true, std::memory_order_release);
    }
    if (auto me = caf::actor_cast<caf::actor>(weak_self))
      caf::anon_send(me, step_done_atom::value, key_id);
  };
  if (reduction) {
    h.reduce_on_device = reduction->shape().type() != topology::kind::ring;
    h.reduce = [reduction, done = h.step_done_from](std::vector<tensor> values, tensor target,
                                                    std::int64_t key_id, op* o) {
      reduction->reduce(
          std::move(values), std::move(target),
          [done, key_id, o](const status& s) { done(key_id, o, s); }, key_id, o->priority);
    };
  }
  self->state.core = std::make_unique<shard_core>(std::move(h), threshold, width);
  return {
      [self](op_ptr& o) { self->state.core->receive(std::move(o)); },
      [self](process_atom) { self->state.core->process(); },
      [self](step_done_atom, std::int64_t key_id) { self->state.core->step_done(key_id); },
      [self](fence_atom, const shard_fence& f) { self->state.core->receive_fence(f); },
  };
}

}  // namespace

caf::actor spawn_shard(caf::actor_system& sys, thread_pool* pool, std::size_t width,
                       std::size_t threshold_bytes, reduction_engine* reduction) {
  return sys.spawn(shard, pool, width, threshold_bytes, reduction);
}

}  // namespace kvactor::detail

// The store's client actor: the embedding interface of kvactor/caf.hpp. It validates and
// issues through the same path as the facade and answers each request when its future is
// ready (the completion comes back as a message, so promises are only touched here).
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <unordered_map>

#include "caf_glue.hpp"
#include "store_impl.hpp"

namespace kvactor::detail {

namespace {

// The public interface plus the completion message its own futures send it.
using client_actor = store_actor_handle::extend<caf::reacts_to<reply_atom, std::uint64_t, status>>;

struct client_state {
  std::weak_ptr<store_impl> store;
  std::unordered_map<std::uint64_t, caf::typed_response_promise<ok_atom>> pending;
  std::uint64_t next_id = 0;
  static inline const char* name = "kvactor.client";
};

using self_ptr = client_actor::stateful_pointer<client_state>;

caf::result<ok_atom> answer_when_ready(self_ptr self, const future<void>& f) {
  auto rp = self->make_response_promise<ok_atom>();
  const auto id = self->state.next_id++;
  self->state.pending.emplace(id, rp);
  caf::actor_addr weak_self = self->address();
  f.state_ptr()->on_ready([weak_self, id, f] {
    if (auto me = caf::actor_cast<client_actor>(weak_self))
      caf::anon_send(me, reply_atom::value, id, f.state_ptr()->get_status());
  });
  return rp;
}

template <class F>
caf::result<ok_atom> with_store(self_ptr self, F&& issue) {
  auto store = self->state.store.lock();
  if (!store) return to_caf_error(status{errc::shut_down, "the store has shut down"});
  return answer_when_ready(self, issue(*store));
}

client_actor::behavior_type client(self_ptr self, std::weak_ptr<store_impl> store) {
  self->state.store = std::move(store);
  return {
      [self](init_atom, const key& k, const tensor& v) {
        return with_store(self, [&](store_impl& s) {
          return s.submit(op_kind::init, key_list(k), value_list(v), {}, 0);
        });
      },
      [self](push_atom, const key& k, const std::vector<tensor>& vs, int priority) {
        return with_store(self, [&](store_impl& s) {
          return s.submit(op_kind::push, key_list(k), value_list(vs), {}, priority);
        });
      },
      [self](pull_atom, const key& k, const std::vector<tensor>& outs, int priority) {
        return with_store(self, [&](store_impl& s) {
          return s.submit(op_kind::pull, key_list(k), {}, value_list(outs), priority);
        });
      },
      [self](pushpull_atom, const key& k, const std::vector<tensor>& vs,
             const std::vector<tensor>& outs, int priority) {
        return with_store(self, [&](store_impl& s) {
          return s.submit(op_kind::pushpull, key_list(k), value_list(vs),
                          outs.empty() ? value_list{} : value_list(outs), priority);
        });
      },
      [self](barrier_atom) { return with_store(self, [&](store_impl& s) { return s.barrier(); }); },
      [self](reply_atom, std::uint64_t id, const status& st) {
        auto it = self->state.pending.find(id);
        if (it == self->state.pending.end()) return;
        auto rp = std::move(it->second);
        self->state.pending.erase(it);
        if (st.is_ok())
          rp.deliver(ok_atom::value);
        else
          rp.deliver(to_caf_error(st));
      },
  };
}

}  // namespace

caf::actor spawn_client(caf::actor_system& sys, std::weak_ptr<store_impl> store) {
  const client_actor a = sys.spawn(client, std::move(store));
  // Checked here: the client actor answers every message of the public interface, so
  // store_actor() may cast the untyped handle the stores keep back to store_actor_handle.
  const store_actor_handle checked = a;
  return caf::actor_cast<caf::actor>(checked);
}

}  // namespace kvactor::detail

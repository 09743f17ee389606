// Embedding kvactor in a CAF 0.17 application: the store runs on the program's own actor
// system, and one of the program's actors (a "trainer") talks to it by message instead of
// through futures. Each step is a request whose reply (kvactor::ok_atom or a caf::error)
// triggers the next one, so the trainer never blocks a scheduler thread.
#include <caf/all.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "kvactor/caf.hpp"

using kvactor::tensor;

namespace {

// Every request gets a bound: a reply that never comes becomes an error, not a hang.
constexpr auto timeout = std::chrono::seconds(10);
constexpr int num_devices = 2;
constexpr int num_pushes = 3;
const kvactor::shape shape{4};

struct trainer_state {
  kvactor::store_actor_handle store;
  kvactor::key weight_key{0};
  std::vector<tensor> grads;  // one per device
  std::vector<tensor> outs;   // one per device
  int acked = 0;
  static inline const char* name = "trainer";
};

using trainer_ptr = caf::stateful_actor<trainer_state>*;

void show(const std::string& what, const std::vector<tensor>& ts) {
  std::cout << what << ':';
  for (const auto& t : ts) {
    std::cout << " [";
    for (double x : t.to_vector())
      std::cout << ' ' << x;
    std::cout << " ]";
  }
  std::cout << '\n';
}

// An unexpected error ends the trainer with it as exit reason, which main reports.
auto fail_with(trainer_ptr self, const char* step) {
  return [self, step](caf::error& err) {
    std::cout << step << " failed: " << kvactor::to_status(err).to_string() << '\n';
    self->quit(std::move(err));
  };
}

void expect_error(trainer_ptr self) {
  // Pushing to a key nobody initialised must fail with not_initialized.
  self->request(self->state.store, timeout, kvactor::push_atom::value, kvactor::key{99},
                self->state.grads, 0)
      .then(
          [self](kvactor::ok_atom) {
            std::cout << "push to key 99 unexpectedly succeeded\n";
            self->quit(caf::sec::unexpected_response);
          },
          [self](caf::error& err) {
            const kvactor::status st = kvactor::to_status(err);
            std::cout << "push to key 99: " << kvactor::to_string(st.code()) << ": " << st.message()
                      << '\n';
            self->quit();  // done: a normal exit
          });
}

void pull_then_pushpull(trainer_ptr self) {
  auto& st = self->state;
  st.outs.clear();
  for (int d = 0; d < num_devices; ++d)
    st.outs.push_back(tensor::zeros(shape));
  self->request(st.store, timeout, kvactor::pull_atom::value, st.weight_key, st.outs, 0)
      .then(
          [self](kvactor::ok_atom) {
            auto& st = self->state;
            show("pull", st.outs);
            // Empty outs: the result is written back into the pushed values.
            self->request(st.store, timeout, kvactor::pushpull_atom::value, st.weight_key, st.grads,
                          std::vector<tensor>{}, 0)
                .then(
                    [self](kvactor::ok_atom) {
                      show("pushpull (in place)", self->state.grads);
                      expect_error(self);
                    },
                    fail_with(self, "pushpull"));
          },
          fail_with(self, "pull"));
}

void push_all(trainer_ptr self) {
  // The pushes go out back to back; the store applies them in the order sent (requests from
  // one actor count as one client), and the pull waits until all of them are acknowledged.
  for (int i = 0; i < num_pushes; ++i) {
    self->request(self->state.store, timeout, kvactor::push_atom::value, self->state.weight_key,
                  self->state.grads, 0)
        .then(
            [self](kvactor::ok_atom) {
              if (++self->state.acked == num_pushes) {
                std::cout << num_pushes << " pushes acknowledged\n";
                pull_then_pushpull(self);
              }
            },
            fail_with(self, "push"));
  }
}

caf::behavior trainer(trainer_ptr self, kvactor::store_actor_handle store) {
  auto& st = self->state;
  st.store = std::move(store);
  for (int d = 0; d < num_devices; ++d)
    st.grads.push_back(tensor::ones(shape));
  self->request(st.store, timeout, kvactor::init_atom::value, st.weight_key, tensor::zeros(shape))
      .then(
          [self](kvactor::ok_atom) {
            std::cout << "init key 0 with zeros\n";
            push_all(self);
          },
          fail_with(self, "init"));
  // No handlers of its own: the trainer lives as long as a reply is pending, and each step
  // issues the next request before it returns; the last step quits.
  return {};
}

}  // namespace

int main() {
  caf::actor_system_config cfg;
  kvactor::add_to_config(cfg);
  caf::actor_system sys{cfg};
  int rc = 0;
  {
    // Declared after the system and destroyed first: the store waits for its operations
    // and stops its actors, and no actor handle outlives the system.
    auto kv = kvactor::create(sys, "local");
    // The optimizer runs inside the store: each push of two "device" gradients of ones
    // moves the weight by -learning_rate * 2.
    kv.set_optimizer(kvactor::sgd_config(0.1)).get();

    caf::scoped_actor self{sys};
    self->spawn<caf::monitored>(trainer, kvactor::store_actor(kv));
    self->receive([&](const caf::down_msg& dm) {
      if (dm.reason) {
        std::cout << "trainer failed: " << sys.render(dm.reason) << '\n';
        rc = 1;
      } else {
        std::cout << "trainer finished\n";
      }
    });
  }
  return rc;
}

// A program with its own caf::actor_system creates the store on it and talks to the store's
// client actor by message.
#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "kvactor/caf.hpp"
#include "test_util.hpp"

using kvactor::tensor;
using kvactor::testing::all_equal;
using kvactor::testing::filled;

namespace {

struct system_fixture : ::testing::Test {
  system_fixture() { kvactor::add_to_config(cfg); }
  caf::actor_system_config cfg;
};

// Sends a request and returns the reply as a status (ok, or the kvactor error it carried).
template <class... Ts>
kvactor::status ask(caf::scoped_actor& self, const kvactor::store_actor_handle& store, Ts&&... xs) {
  kvactor::status result{kvactor::errc::internal, "no reply"};
  self->request(store, std::chrono::seconds(10), std::forward<Ts>(xs)...)
      .receive([&](kvactor::ok_atom) { result = {}; },
               [&](caf::error& e) { result = kvactor::to_status(e); });
  return result;
}

}  // namespace

using Embedding = system_fixture;

TEST_F(Embedding, MessageInterfaceMatchesTheFacade) {
  caf::actor_system sys{cfg};
  {
    auto kv = kvactor::create(sys, "local");
    kvactor::store_actor_handle store = kvactor::store_actor(kv);
    caf::scoped_actor self{sys};
    const kvactor::shape s{2, 3};
    EXPECT_TRUE(ask(self, store, kvactor::init_atom::value, kvactor::key{3}, filled(s, 2)).is_ok());
    std::vector<tensor> devs = {tensor::ones(s), tensor::ones(s), tensor::ones(s), tensor::ones(s)};
    EXPECT_TRUE(ask(self, store, kvactor::push_atom::value, kvactor::key{3}, devs, 0).is_ok());
    tensor out = tensor::zeros(s);
    EXPECT_TRUE(
        ask(self, store, kvactor::pull_atom::value, kvactor::key{3}, std::vector<tensor>{out}, 0)
            .is_ok());
    EXPECT_TRUE(all_equal(out, 4));
    EXPECT_TRUE(ask(self, store, kvactor::pushpull_atom::value, kvactor::key{3},
                    std::vector<tensor>{filled(s, 9)}, std::vector<tensor>{out}, 5)
                    .is_ok());
    EXPECT_TRUE(all_equal(out, 9));
    // The facade and the actor see one store.
    tensor via_facade = tensor::zeros(s);
    kv.pull(3, via_facade).get();
    EXPECT_TRUE(all_equal(via_facade, 9));
    EXPECT_TRUE(ask(self, store, kvactor::barrier_atom::value).is_ok());

    // Errors come back as caf::error in kvactor's category, with the key in the text.
    auto st = ask(self, store, kvactor::push_atom::value, kvactor::key{7},
                  std::vector<tensor>{filled(s, 1)}, 0);
    EXPECT_EQ(st.code(), kvactor::errc::not_initialized);
    EXPECT_NE(st.message().find("7"), std::string::npos);
    st = ask(self, store, kvactor::init_atom::value, kvactor::key{3}, filled(s, 1));
    EXPECT_EQ(st.code(), kvactor::errc::already_initialized);
    auto rendered = sys.render(kvactor::to_caf_error(st));
    EXPECT_NE(rendered.find("already_initialized"), std::string::npos) << rendered;
  }
  // The store is gone; the system carries on.
  caf::scoped_actor self{sys};
  // Spawned with an (unused) argument: CAF 0.17's init_fun_factory binds a reference through
  // a null tuple pointer for argument-less function actors, which UBSan reports.
  auto echo = sys.spawn(
      [](caf::event_based_actor*, int) -> caf::behavior { return {[](int x) { return x + 1; }}; },
      0);
  int answer = 0;
  self->request(echo, std::chrono::seconds(5), 41)
      .receive([&](int x) { answer = x; }, [](caf::error&) {});
  EXPECT_EQ(answer, 42);
  self->send_exit(echo, caf::exit_reason::user_shutdown);
}

// An event-based actor of the user's chains requests without blocking.
TEST_F(Embedding, EventBasedActorChainsRequests) {
  caf::actor_system sys{cfg};
  auto kv = kvactor::create(sys, "local");
  kvactor::store_actor_handle store = kvactor::store_actor(kv);
  const kvactor::shape s{4};
  tensor out = tensor::zeros(s);
  std::promise<kvactor::status> done;
  auto trainer = sys.spawn(
      [store, s, out, &done](caf::event_based_actor* self, int) {
        self->request(store, caf::infinite, kvactor::init_atom::value, kvactor::key{"w"},
                      filled(s, 1))
            .then(
                [=, &done](kvactor::ok_atom) {
                  self->request(store, caf::infinite, kvactor::push_atom::value, kvactor::key{"w"},
                                std::vector<tensor>{filled(s, 5)}, 0)
                      .then(
                          [=, &done](kvactor::ok_atom) {
                            self->request(store, caf::infinite, kvactor::pull_atom::value,
                                          kvactor::key{"w"}, std::vector<tensor>{out}, 0)
                                .then([&done](kvactor::ok_atom) { done.set_value({}); },
                                      [&done](caf::error& e) {
                                        done.set_value(kvactor::to_status(e));
                                      });
                          },
                          [&done](caf::error& e) { done.set_value(kvactor::to_status(e)); });
                },
                [&done](caf::error& e) { done.set_value(kvactor::to_status(e)); });
      },
      0);
  auto st = done.get_future().get();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(all_equal(out, 5));
  caf::anon_send_exit(trainer, caf::exit_reason::user_shutdown);
}

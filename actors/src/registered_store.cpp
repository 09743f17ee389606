// A registered store type behind the kvstore facade: forwards each call to the user's
// custom_store, turns what it throws into the call's error, and counts the futures it
// returned so that wait_all() and destruction wait for them.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <mutex>

#include "store_registry.hpp"

namespace kvactor::detail {

namespace {

class registered_store final : public store_impl {
 public:
  registered_store(std::string type, std::unique_ptr<custom_store> user)
      : type_(std::move(type)), user_(std::move(user)), open_(std::make_shared<counter>()) {}
  ~registered_store() override { shutdown(); }

  future<void> submit(op_kind kind, const key_list& keys, const value_list& values,
                      const value_list& outs, int priority) override {
    return call([&] {
      switch (kind) {
        case op_kind::init:
          return user_->init(keys, values);
        case op_kind::push:
          return user_->push(keys, values, priority);
        case op_kind::pull:
          return user_->pull(keys, outs, priority);
        case op_kind::pushpull:
          return user_->pushpull(keys, values, outs, priority);
        case op_kind::broadcast:
          return user_->broadcast(keys, values, outs, priority);
        case op_kind::row_pull:
          break;  // the facade calls row_sparse_pull()
      }
      return future<void>::ready_with(status{errc::internal, "no such dense operation"});
    });
  }
  future<void> submit_sparse(op_kind kind, const key_list& keys, const sparse_list& values,
                             int priority) override {
    return call([&] {
      return kind == op_kind::init ? user_->init_row_sparse(keys, values)
                                   : user_->push_row_sparse(keys, values, priority);
    });
  }
  future<void> row_sparse_pull(const key_list& keys, const value_list& outs,
                               const value_list& row_ids, int priority,
                               row_layout layout) override {
    if (layout == row_layout::compact)
      return future<void>::ready_with(status{
          errc::unsupported,
          "row_sparse_pull into row-sparse outputs: store type " + type_ + " does not support it"});
    return call([&] { return user_->row_sparse_pull(keys, outs, row_ids, priority); });
  }
  void set_updater(std::shared_ptr<const updater> u) override { user_->set_updater(std::move(u)); }
  future<void> set_optimizer(const optimizer_config& cfg) override {
    return call([&] {
      // MXNet's rule: a store that is not capable of optimizers is never handed one.
      if (!user_->is_capable("optimizer"))
        return future<void>::ready_with(
            status{errc::unsupported,
                   "set_optimizer: store type \"" + type_ + "\" is not capable of \"optimizer\""});
      return user_->set_optimizer(cfg);
    });
  }
  future<void> set_compression(const std::string& type, double threshold) override {
    return call([&] { return user_->set_gradient_compression(type, threshold); });
  }
  future<void> save_states(const std::string& file, bool dump_optimizer) override {
    return call([&] { return user_->save_optimizer_states(file, dump_optimizer); });
  }
  future<void> load_states(const std::string& file) override {
    return call([&] { return user_->load_optimizer_states(file); });
  }
  future<void> send_command(int head, const std::string& body) override {
    return call([&] { return user_->send_command_to_servers(head, body); });
  }
  std::string type() const override { return type_; }
  int rank() const override { return user_->rank(); }
  int num_workers() const override { return user_->num_workers(); }
  future<void> barrier() override {
    return call([&] { return user_->barrier(); });
  }
  bool is_capable(std::string_view capability) const override {
    std::string c{capability};
    std::transform(c.begin(), c.end(), c.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (c != "optimizer")
      throw error{errc::invalid_argument,
                  "unknown capability \"" + std::string{capability} + "\" (known: optimizer)"};
    return user_->is_capable(c);
  }
  void wait_all() override {
    open_->wait_zero();
    user_->wait_all();
  }
  std::size_t outstanding() const override { return open_->value(); }
  void shutdown() override {
    if (stopped_.exchange(true)) return;
    wait_all();
  }
  const caf::actor* client_actor() const noexcept override { return nullptr; }
  bool converts_outputs() const noexcept override { return false; }

 private:
  class counter {
   public:
    void up() {
      std::lock_guard<std::mutex> g(mu_);
      ++n_;
    }
    void down() {
      std::lock_guard<std::mutex> g(mu_);
      if (--n_ == 0) zero_.notify_all();
    }
    void wait_zero() {
      std::unique_lock<std::mutex> lk(mu_);
      zero_.wait(lk, [this] { return n_ == 0; });
    }
    std::size_t value() const {
      std::lock_guard<std::mutex> g(mu_);
      return n_;
    }

   private:
    mutable std::mutex mu_;
    std::condition_variable zero_;
    std::size_t n_ = 0;
  };

  // The user's future for the call, or the error its operation threw; forwarded through a
  // promise of our own, so that the facade's watch sees errors nobody observed (then() on
  // the user's future would count as observing them).
  template <class F>
  future<void> call(F&& op) {
    future<void> f;
    try {
      f = op();
    } catch (const error& e) {
      return future<void>::ready_with(e.to_status());
    } catch (const std::exception& e) {
      return future<void>::ready_with(
          status{errc::internal, "store type \"" + type_ + "\" threw: " + e.what()});
    }
    if (!f.valid())
      return future<void>::ready_with(
          status{errc::internal, "store type \"" + type_ + "\" returned an invalid future"});
    auto p = std::make_shared<promise<void>>();
    auto result = p->get_future();
    open_->up();
    f.then([p, open = open_](const future<void>& done) {
      p->set_status(done.get_status());
      open->down();
    });
    return result;
  }

  std::string type_;
  std::unique_ptr<custom_store> user_;
  std::shared_ptr<counter> open_;
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::shared_ptr<store_impl> make_registered_store(std::string type, const store_factory& factory,
                                                  const options& opts) {
  std::unique_ptr<custom_store> user;
  try {
    user = factory(opts);
  } catch (const error&) {
    throw;
  } catch (const std::exception& e) {
    throw error{errc::internal, "the factory of store type \"" + type + "\" threw: " + e.what()};
  }
  if (!user)
    throw error{errc::invalid_argument,
                "the factory of store type \"" + type + "\" returned no store"};
  return std::make_shared<registered_store>(std::move(type), std::move(user));
}

}  // namespace kvactor::detail

// The runtime: I/O threads, the registry, shutdown, listen and connect.
#include <sys/resource.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "connection.hpp"
#include "core.hpp"
#include "listener.hpp"

namespace kvactor::net {

namespace asio = boost::asio;
using boost::system::error_code;
using detail::conn_impl;
using detail::core;
using detail::log_line;

namespace detail {

bool core::add(const std::shared_ptr<conn_impl>& c) {
  std::lock_guard<std::mutex> g(mu);
  if (stopping) return false;
  conns.emplace(c.get(), c);
  return true;
}

void core::remove(conn_impl* c) {
  std::shared_ptr<conn_impl> last;  // released outside the lock
  std::lock_guard<std::mutex> g(mu);
  auto it = conns.find(c);
  if (it == conns.end()) return;
  last = std::move(it->second);
  conns.erase(it);
}

bool core::add(const std::shared_ptr<listener_impl>& l) {
  std::lock_guard<std::mutex> g(mu);
  if (stopping) return false;
  listeners.emplace(l.get(), l);
  return true;
}

void core::remove(listener_impl* l) {
  std::shared_ptr<listener_impl> last;
  std::lock_guard<std::mutex> g(mu);
  auto it = listeners.find(l);
  if (it == listeners.end()) return;
  last = std::move(it->second);
  listeners.erase(it);
}

namespace {

// What listen() returns: dropping it stops the listener, like stop().
class listener_handle final : public listener {
 public:
  explicit listener_handle(std::shared_ptr<listener_impl> l) : impl_(std::move(l)) {}
  ~listener_handle() override { impl_->stop(); }
  std::uint16_t port() const override { return impl_->port(); }
  void stop() override { impl_->stop(); }

 private:
  std::shared_ptr<listener_impl> impl_;
};

// Each connection is a descriptor, and a soft limit of 1024 (a common default outside the
// launcher) is soon reached by idle peers, whatever the pending cap. Raising the soft limit to
// the hard one needs no privilege; where it fails, the old limit stays.
void raise_open_files_limit() {
  static std::once_flag once;
  std::call_once(once, [] {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == r.rlim_max) return;
    r.rlim_cur = r.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &r) != 0)
      log_line("cannot raise the open-files limit to " + std::to_string(r.rlim_max));
  });
}

void run_io(asio::io_context& io) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      log_line(std::string{"an I/O handler threw: "} + e.what());
    } catch (...) {
      log_line("an I/O handler threw");
    }
  }
}

}  // namespace
}  // namespace detail

struct runtime::impl {
  std::shared_ptr<core> c;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::condition_variable cv;
  std::size_t running = 0;
};

runtime::runtime(std::size_t threads, buffer_pool* pool) : impl_(std::make_shared<impl>()) {
  detail::raise_open_files_limit();
  impl_->c = std::make_shared<core>(pool ? pool : &buffer_pool::global());
  impl_->work.emplace(asio::make_work_guard(impl_->c->io));
  const std::size_t n = std::max<std::size_t>(threads, 1);
  impl_->running = n;
  for (std::size_t i = 0; i < n; ++i)
    impl_->threads.emplace_back([im = impl_] {
      detail::run_io(im->c->io);
      std::lock_guard<std::mutex> g(im->mu);
      --im->running;
      im->cv.notify_all();
    });
}

runtime::~runtime() {
  shutdown();
  auto& im = *impl_;
  im.work.reset();
  const auto me = std::this_thread::get_id();
  const bool on_io_thread = std::any_of(im.threads.begin(), im.threads.end(),
                                        [&](const std::thread& t) { return t.get_id() == me; });
  {
    // Closed sockets and cancelled timers finish their handlers promptly; the bound is for
    // a handler that blocks, which is the caller's bug but must not hang us forever.
    std::unique_lock<std::mutex> l(im.mu);
    const std::size_t left = on_io_thread ? 1 : 0;
    if (!im.cv.wait_for(l, std::chrono::seconds(10), [&] { return im.running <= left; })) {
      log_line("I/O threads still busy 10 s after shutdown; stopping them");
      im.c->io.stop();
    }
  }
  for (auto& t : im.threads) {
    if (t.get_id() == me)
      t.detach();
    else
      t.join();
  }
  {
    std::lock_guard<std::mutex> g(im.c->mu);
    im.c->io_gone = true;
  }
  // Handlers posted after the threads ran out of work (e.g. an on_sent failure) run here.
  if (!on_io_thread) {
    im.c->io.restart();
    detail::run_io(im.c->io);
  }
}

runtime::stats runtime::get_stats() const {
  auto& c = *impl_->c;
  stats s;
  s.pending_connections = c.pending.load();
  s.read_buffer_bytes = c.read_buffer_bytes.load();
  s.shm_segments = c.shm_segments.load();
  s.shm_bytes_sent = c.shm_bytes_sent.load();
  s.shm_bytes_received = c.shm_bytes_received.load();
  std::lock_guard<std::mutex> g(c.mu);
  s.connections = c.conns.size();
  return s;
}

void runtime::shutdown(const status& why) {
  auto& c = *impl_->c;
  std::vector<std::shared_ptr<conn_impl>> conns;
  std::vector<std::shared_ptr<detail::listener_impl>> listeners;
  {
    std::lock_guard<std::mutex> g(c.mu);
    c.stopping = true;
    for (auto& [p, s] : c.conns)
      conns.push_back(s);
    for (auto& [p, s] : c.listeners)
      listeners.push_back(s);
  }
  for (auto& l : listeners)
    l->stop();
  for (auto& x : conns)
    x->shutdown_close(why);
}

result<std::shared_ptr<listener>> runtime::listen(const std::string& host, std::uint16_t port,
                                                  identity self, caps c, handlers h) {
  if (auto st = detail::check_config(self, c); !st) return st;
  auto& rt = impl_->c;
  {
    std::lock_guard<std::mutex> g(rt->mu);
    if (rt->stopping) return status{errc::shut_down, "the transport runtime is shut down"};
  }
  const std::string where = host + ":" + std::to_string(port);
  error_code ec;
  asio::ip::tcp::endpoint ep;
  const auto addr = asio::ip::make_address(host, ec);
  if (!ec) {
    ep = asio::ip::tcp::endpoint(addr, port);
  } else {
    asio::ip::tcp::resolver r(rt->io);
    const auto rs = r.resolve(host, std::to_string(port), ec);
    if (ec || rs.empty())
      return status{errc::invalid_argument,
                    "cannot listen on " + where + ": " + (ec ? ec.message() : "no address")};
    ep = rs.begin()->endpoint();
  }
  asio::ip::tcp::acceptor acc(rt->io);
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return status{errc::invalid_argument, "cannot listen on " + where + ": " + ec.message()};
  auto tls = detail::tls_context_for(self, true);
  if (!tls) return tls.error();
  auto l = std::make_shared<detail::listener_impl>(rt, std::move(acc), std::move(self), c,
                                                   std::move(h), std::move(*tls));
  if (!rt->add(l)) return status{errc::shut_down, "the transport runtime is shut down"};
  l->start();
  return std::shared_ptr<listener>(std::make_shared<detail::listener_handle>(std::move(l)));
}

void runtime::connect(const std::string& host, std::uint16_t port, identity self, caps c,
                      handlers h, std::chrono::steady_clock::time_point deadline,
                      std::function<void(result<connection_ptr>)> done) {
  auto& rt = impl_->c;
  if (!done) done = [](const result<connection_ptr>&) {};
  if (auto st = detail::check_config(self, c); !st) {
    rt->post_or_run(rt->io.get_executor(), [done = std::move(done), st] { done(st); });
    return;
  }
  auto tls = detail::tls_context_for(self, false);
  if (!tls) {
    rt->post_or_run(rt->io.get_executor(),
                    [done = std::move(done), st = tls.error()] { done(st); });
    return;
  }
  auto conn = std::make_shared<conn_impl>(rt, conn_impl::side::connector, std::move(self), c,
                                          std::move(h), std::move(*tls));
  conn->set_target(host, port, deadline, std::move(done));
  if (!rt->add(conn)) {
    conn->close(status{errc::shut_down, "the transport runtime is shut down"});  // → done
    return;
  }
  conn->start_connect();
}

}  // namespace kvactor::net

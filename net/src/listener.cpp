#include "listener.hpp"

#include <boost/asio/bind_executor.hpp>

#include <algorithm>
#include <string>
#include <utility>

namespace kvactor::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;

listener_impl::listener_impl(std::shared_ptr<core> rt, asio::ip::tcp::acceptor acc, identity self,
                             caps c, handlers h, std::shared_ptr<tls_context> tls)
    : rt_(std::move(rt)),
      strand_(asio::make_strand(rt_->io)),
      acc_(std::move(acc)),
      backoff_(rt_->io),
      self_(std::move(self)),
      caps_(c),
      h_(std::move(h)),
      tls_(std::move(tls)),
      port_(acc_.local_endpoint().port()),
      refusals_(std::make_shared<log_limiter>(rt_, "port " + std::to_string(port_),
                                              c.refusal_log_lines, c.refusal_log_interval)) {}

void listener_impl::start() {
  asio::post(strand_, [self = shared_from_this()] { self->accept_next(); });
}

void listener_impl::stop() {
  rt_->post_or_run(strand_, [self = shared_from_this()] {
    if (self->stopped_) return;
    self->stopped_ = true;
    error_code ignored;
    self->acc_.close(ignored);
    self->backoff_.cancel();
    self->pending_.clear();
    self->refusals_->stop();
    self->rt_->remove(self.get());
  });
}

void listener_impl::accept_next() {
  if (stopped_) return;
  auto c = std::make_shared<conn_impl>(rt_, conn_impl::side::acceptor, self_, caps_, h_, tls_);
  c->set_refusal_log(refusals_);
  acc_.async_accept(c->socket(), asio::bind_executor(
                                     strand_, [self = shared_from_this(), c](const error_code& ec) {
                                       self->on_accept(ec, c);
                                     }));
}

void listener_impl::on_accept(const error_code& ec, const std::shared_ptr<conn_impl>& c) {
  if (stopped_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Usually out of file descriptors: back off instead of spinning on the error.
    refusals_->line("accept on port " + std::to_string(port_) + " failed: " + ec.message() +
                    "; retrying in 50 ms");
    backoff_.expires_after(std::chrono::milliseconds(50));
    backoff_.async_wait(
        asio::bind_executor(strand_, [self = shared_from_this()](const error_code& ec) {
          if (!ec) self->accept_next();
        }));
    return;
  }
  if (rt_->add(c)) {
    admit(c);
    c->start_accepted();
  } else {
    error_code ignored;
    c->socket().close(ignored);
  }
  accept_next();
}

void listener_impl::admit(const std::shared_ptr<conn_impl>& c) {
  const std::size_t cap = caps_.max_pending_connections;
  if (pending_.size() >= cap) {
    // Forget those that authenticated or closed since; O(cap) only when the list is full.
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                  [](const std::weak_ptr<conn_impl>& w) {
                                    const auto p = w.lock();
                                    return !p || !p->awaiting_authentication();
                                  }),
                   pending_.end());
    while (pending_.size() >= cap) {
      if (const auto oldest = pending_.front().lock())
        oldest->evict(status{errc::unauthenticated,
                             "not authenticated while " + std::to_string(cap) +
                                 " newer connections waited (caps.max_pending_connections)"});
      pending_.pop_front();
    }
  }
  pending_.push_back(c);
}

}  // namespace kvactor::net::detail

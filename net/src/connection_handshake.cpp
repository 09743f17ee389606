// The transport frames a connection receives once whole (connection_read.cpp assembles
// them): the CHALLENGE/HELLO/WELCOME handshake that authenticates the peer and opens the
// connection, then HEARTBEAT and GOODBYE. When the wire is TLS, begin_handshake() runs once
// TLS is up (tls.cpp). Strand only.
#include <mutex>
#include <string>
#include <utility>

#include "connection.hpp"

namespace kvactor::net::detail {

namespace fr = serialization;

void conn_impl::begin_handshake() {
  if (side_ == side::acceptor) {
    auto n = handshake::random_nonce();
    if (!n) {
      fail(errc::internal, n.error().message());
      return;
    }
    nonce_a_ = *n;
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_control_locked(serialization::frame_type::challenge,
                           handshake::encode(handshake::challenge{handshake::protocol_version,
                                                                  self_.cluster_id, nonce_a_}));
    }
    kick();
    if (ended()) return;
  }
  read_more();
  arm_timer();
}

bool conn_impl::on_transport_frame() {
  switch (hdr_.type) {
    case fr::frame_type::heartbeat:
      return true;  // its arrival already counted as a sign of life
    case fr::frame_type::goodbye:
      return on_goodbye();
    case fr::frame_type::challenge:
      return on_challenge();
    case fr::frame_type::hello:
      return on_hello();
    case fr::frame_type::welcome:
      return on_welcome();
    case fr::frame_type::shm_offer:
      return on_shm_offer();
    case fr::frame_type::shm_answer:
      return on_shm_answer();
    case fr::frame_type::shm_release:
      return on_shm_release();
    default:
      fail(errc::protocol_error, "unknown transport frame type " + std::to_string(hdr_.type));
      return false;
  }
}

bool conn_impl::on_goodbye() {
  auto g = handshake::decode_goodbye(meta_.data(), meta_.size());
  if (!g) {
    fail(errc::protocol_error, g.error().message());
    return false;
  }
  if (phase_.load() == phase::handshake) {
    // The peer refused us; its reason is worth reporting but never becomes "ok".
    const errc code = g->code == errc::ok ? errc::peer_lost : g->code;
    do_close(status{code, "peer ended the handshake: " + g->message}, true, false);
  } else if (g->code == errc::ok) {
    do_close(status::ok(), false, false);
  } else {
    // peer_lost reports a failure elsewhere (a server stopping because its cluster lost a
    // node), which the application hears in on_close and words itself: not logged here.
    do_close(status{g->code, "peer closed the connection: " + g->message},
             g->code != errc::peer_lost, false);
  }
  return false;
}

bool conn_impl::on_challenge() {
  auto c = handshake::decode_challenge(meta_.data(), meta_.size());
  if (!c) {
    fail(errc::protocol_error, c.error().message());
    return false;
  }
  if (c->version != handshake::protocol_version) {
    fail(errc::protocol_error, "handshake version " + std::to_string(c->version) +
                                   " is not supported (this build speaks " +
                                   std::to_string(handshake::protocol_version) + ")");
    return false;
  }
  if (c->cluster_id != self_.cluster_id) {
    fail(errc::unauthenticated, "cluster id mismatch: the peer is in cluster '" + c->cluster_id +
                                    "', this end in '" + self_.cluster_id + "'");
    return false;
  }
  auto nb = handshake::random_nonce();
  if (!nb) {
    fail(errc::internal, nb.error().message());
    return false;
  }
  nonce_a_ = c->nonce_a;
  nonce_b_ = *nb;
  auto mac = handshake::hello_mac(self_.secret, self_.cluster_id, self_.role, self_.rank, nonce_a_,
                                  nonce_b_);
  if (!mac) {
    fail(errc::internal, mac.error().message());
    return false;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_control_locked(fr::frame_type::hello,
                         handshake::encode(handshake::hello{self_.cluster_id, self_.role,
                                                            self_.rank, nonce_b_, *mac}));
  }
  // Right behind the HELLO, so that the acceptor answers (and makes its own offer) right
  // behind its WELCOME: no shared-memory frame reaches this end long after it opened.
  offer_shm();
  handshake_step_ = 1;
  kick();
  return !ended();
}

bool conn_impl::on_hello() {
  auto h = handshake::decode_hello(meta_.data(), meta_.size());
  if (!h) {
    fail(errc::protocol_error, h.error().message());
    return false;
  }
  if (h->cluster_id != self_.cluster_id) {
    fail(errc::unauthenticated, "cluster id mismatch: the peer is in cluster '" + h->cluster_id +
                                    "', this end in '" + self_.cluster_id + "'");
    return false;
  }
  auto expected =
      handshake::hello_mac(self_.secret, h->cluster_id, h->role, h->rank, nonce_a_, h->nonce_b);
  if (!expected) {
    fail(errc::internal, expected.error().message());
    return false;
  }
  if (!handshake::equal(*expected, h->mac_b)) {
    fail(errc::unauthenticated,
         "authentication failed: the HELLO's MAC does not match "
         "(a different secret?)");
    return false;
  }
  auto mac = handshake::welcome_mac(self_.secret, self_.cluster_id, self_.role, self_.rank,
                                    h->nonce_b, nonce_a_);
  if (!mac) {
    fail(errc::internal, mac.error().message());
    return false;
  }
  peer_ = identity{};
  peer_.cluster_id = h->cluster_id;
  peer_.role = h->role;
  peer_.rank = h->rank;
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_control_locked(fr::frame_type::welcome,
                         handshake::encode(handshake::welcome{self_.role, self_.rank, *mac}));
  }
  return opened();
}

bool conn_impl::on_welcome() {
  auto w = handshake::decode_welcome(meta_.data(), meta_.size());
  if (!w) {
    fail(errc::protocol_error, w.error().message());
    return false;
  }
  auto expected =
      handshake::welcome_mac(self_.secret, self_.cluster_id, w->role, w->rank, nonce_b_, nonce_a_);
  if (!expected) {
    fail(errc::internal, expected.error().message());
    return false;
  }
  if (!handshake::equal(*expected, w->mac_a)) {
    fail(errc::unauthenticated,
         "authentication failed: the WELCOME's MAC does not match "
         "(a different secret, or not a kvactor peer)");
    return false;
  }
  peer_ = identity{};
  peer_.cluster_id = self_.cluster_id;
  peer_.role = w->role;
  peer_.rank = w->rank;
  return opened();
}

bool conn_impl::opened() {
  phase_ = phase::open;
  leave_pending();
  set_read_buffer(read_buffer_size);
  {
    std::lock_guard<std::mutex> g(mu_);
    q_.enable_application();
  }
  // The acceptor's WELCOME. When more arrived behind the HELLO (the connector's shared-memory
  // offer), it goes out at the end of this read together with the answer, so that the
  // connector has both before it runs anything of its own (see connection_shm.cpp).
  if (rpos_ != rend_)
    kick_after_read_ = true;
  else
    kick();
  if (ended()) return false;
  arm_timer();  // peer timeout and heartbeats apply from now on
  auto self = shared_from_this();
  if (h_.on_open && !guarded("on_open", [&] { h_.on_open(self); })) return false;
  if (done_) {
    auto done = std::move(done_);
    done_ = nullptr;
    if (!guarded("the connect callback", [&] { done(connection_ptr{self}); })) return false;
  }
  return !ended();
}

}  // namespace kvactor::net::detail

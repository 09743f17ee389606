// One TCP connection: handshake, read loop, writer, timers and close. conn_impl's members
// are defined by role: setup in connection.cpp, TLS start in tls.cpp, the handshake and the
// other transport frames in connection_handshake.cpp, the read loop in connection_read.cpp,
// timers in connection_timer.cpp, the send path in connection_send.cpp, close in
// connection_close.cpp, the shared-memory path (shm.hpp) in connection_shm.cpp.
//
// Threading: everything below "strand only" runs on the connection's strand (reads, timer,
// handshake, close, every user callback). The writer state is guarded by mu_ and may be
// driven from any thread: send() writes directly (non-blocking, under mu_) when no write is
// in flight, and otherwise leaves the rest to the async chain on the strand. Socket
// operations are split so that no two ever race: reads are started only on the strand;
// writes only by whoever holds the writer role (writing_ == false under mu_, or the async
// chain that set it); close happens on the strand under mu_.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container/small_vector.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core.hpp"
#include "kvactor/net/handshake.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/frame.hpp"
#include "log_limiter.hpp"
#include "send_queue.hpp"
#include "shm.hpp"
#include "wire.hpp"

namespace kvactor::net::detail {

/// invalid_argument for an identity or caps the transport cannot work with.
status check_config(const identity& self, const caps& c);
std::string to_string(const boost::asio::ip::tcp::endpoint& ep);

class conn_impl final : public connection, public std::enable_shared_from_this<conn_impl> {
 public:
  enum class side : std::uint8_t { acceptor, connector };
  using clock = std::chrono::steady_clock;
  using done_fn = std::function<void(result<connection_ptr>)>;

  /// tls: the context of identity::tls connections (tls_context_for), or null.
  conn_impl(std::shared_ptr<core> rt, side s, identity self, caps c, handlers h,
            std::shared_ptr<tls_context> tls);
  ~conn_impl() override;

  void send(outgoing m) override;
  void close(const status& why) override;
  bool is_open() const override;
  const identity& peer() const override { return peer_; }
  std::string remote_address() const override { return remote_; }
  std::string local_address() const override { return local_; }

  boost::asio::ip::tcp::socket& socket() noexcept { return sock_; }
  /// Acceptor side, before accepting: lines about a failure before authentication go here.
  void set_refusal_log(std::shared_ptr<log_limiter> l) { refusals_ = std::move(l); }
  /// Acceptor side, once accepted: starts the handshake on the strand.
  void start_accepted();
  /// Not yet authenticated, nor closing. Any thread.
  bool awaiting_authentication() const noexcept {
    return phase_.load() <= phase::handshake && !close_requested_.load();
  }
  /// Closes with why (logged) unless the connection authenticated in the meantime.
  void evict(status why);
  /// Connector side: set before the connection is registered (so that a shutdown racing
  /// with the start still reaches `done`), then start_connect().
  void set_target(std::string host, std::uint16_t port, clock::time_point deadline, done_fn done);
  void start_connect();
  /// The runtime is shutting down: close with why (ok: an orderly close).
  void shutdown_close(const status& why) { close(why); }

 private:
  static constexpr std::size_t read_buffer_size = 64 * 1024;
  // Before authentication only whole transport frames of at most 512 meta bytes may arrive:
  // a small buffer keeps an idle, never-authenticating connection cheap.
  static constexpr std::size_t handshake_buffer_size = 1024;
  static_assert(handshake_buffer_size >=
                serialization::frame_header_size + handshake::max_meta_size);

  // closing: an orderly close waits (at most caps::close_linger) for the write in flight to
  // finish so that a GOODBYE can follow it; reads are ignored meanwhile.
  enum class phase : std::uint8_t { idle, connecting, handshake, open, closing, closed };
  enum class read_state : std::uint8_t { header, meta, payload };
  struct inbound {
    message msg;
    std::uint64_t received = 0;
    bool single = false;          ///< FIRST|LAST: not counted against the partial caps
    clock::time_point started{};  ///< the FIRST frame's arrival (partial messages)
  };
  struct key_hash {
    std::size_t operator()(const std::pair<std::uint8_t, std::uint64_t>& k) const noexcept {
      return std::hash<std::uint64_t>{}(k.second * 31 + k.first);
    }
  };
  // Messages a write finished: a few per call, inline (no allocation per send).
  using sent_list = boost::container::small_vector<pending_ptr, 4>;

  // ---- strand only
  // Setup (connection.cpp).
  void try_connect();
  void on_tcp_ready();
  void set_read_buffer(std::size_t size);
  void leave_pending();
  std::string name() const;
  // TLS (tls.cpp): the plaintext TLS frame, then the TLS handshake, then begin_handshake().
  void start_tls();
  void on_tls_frame(const boost::system::error_code& ec);
  void on_tls_handshake(const boost::system::error_code& ec);
  // The handshake and the other transport frames (connection_handshake.cpp).
  /// The CHALLENGE/HELLO/WELCOME handshake (inside TLS when the wire is secure).
  void begin_handshake();
  bool on_transport_frame();
  bool on_challenge();
  bool on_hello();
  bool on_welcome();
  bool on_goodbye();
  bool opened();
  // Shared memory with a co-located peer (connection_shm.cpp).
  bool shm_enabled() const;
  void offer_shm();
  bool on_shm_offer();
  bool on_shm_answer();
  bool on_shm_release();
  /// The current frame's slice lies in the peer's segment: copies it to the destination, or
  /// hands it to the message's sink.
  bool take_shm_slice();
  /// Gives the slots taken so far back to the peer (one SHM_RELEASE frame per 128).
  void flush_shm_releases();
  void drop_shm();
  // The read loop (connection_read.cpp).
  void read_more();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  bool process();
  bool on_header();
  bool start_meta();
  void keep_meta_room(message& handled);
  bool on_meta_done();
  /// The current frame's slice of `in` is due: where it goes (the message's memory, or the
  /// sink's slice buffer), or take it from the shared-memory slot at once.
  bool start_slice(inbound& in);
  enum class sink_answer : std::uint8_t { taken, declined, failed };
  /// The current frame's slice, at data, to the current message's sink.
  sink_answer sink_slice(const void* data);
  /// The sink declined the current slice: read nothing more until it takes it (retry_sink).
  bool hold_for_sink();
  void retry_sink();
  bool on_frame_done();
  /// The current frame's slice is in place (or taken): counts it, delivers a whole message.
  bool slice_done();
  /// After process(): releases, a kick the read asked for, and the next read unless a slice
  /// is held for its sink.
  void read_on();
  /// Tells the sinks of messages that will never complete; the tables are cleared.
  void abort_sinks(const status& why);
  /// The partial message that started first, or null.
  const inbound* oldest_partial() const;
  // Timers (connection_timer.cpp).
  void arm_timer();
  void on_timer();
  /// Bytes arrived unread since the last look (the peer is alive though nothing was read).
  bool more_arrived_unread(clock::time_point now);
  // The writer's async chain (connection_send.cpp).
  void kick();
  void write_async();
  void async_write_batch();
  void on_written(const boost::system::error_code& ec, std::size_t n);
  void run_sent(sent_list& done);
  // Close (connection_close.cpp).
  bool ended() const noexcept { return phase_.load() >= phase::closing; }
  void do_close(const status& why, bool log, bool goodbye);
  void finish_close(bool goodbye);
  void fail(errc code, std::string why) { do_close(status{code, std::move(why)}, true, true); }
  void fail_all(std::vector<pending_ptr>& failed, const status& why);
  void discard_unread() noexcept;
  // A user callback that throws closes the connection (below).
  template <class F>
  bool guarded(const char* what, F&& f);

  // ---- writer, under mu_ (connection_send.cpp; the GOODBYE in connection_close.cpp)
  bool write_direct_locked(sent_list& done);
  void queue_control_locked(std::uint8_t type, std::vector<std::uint8_t> meta);
  void write_goodbye_locked(const status& why);
  status unsent_status_locked() const;
  void prepare_buffers_locked();

  // Any thread (connection_send.cpp).
  void finish_later(std::function<void(const status&)> f, std::shared_ptr<const void> keepalive,
                    status st);

  const std::shared_ptr<core> rt_;  // first: the io_context outlives every member below
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::socket sock_;
  wire wire_;  // every frame goes through it; reads and the async writer on the strand
  boost::asio::steady_timer timer_;
  boost::asio::ip::tcp::resolver resolver_;
  const side side_;
  const identity self_;
  const caps caps_;
  const handlers h_;
  serialization::frame_caps fcaps_;        // strand; shm_refs once the peer's segment is mapped
  std::shared_ptr<log_limiter> refusals_;  // set before the start; acceptor side only

  identity peer_;       // set on the strand before on_open publishes the connection
  std::string remote_;  // likewise
  std::string local_;
  std::atomic<phase> phase_{phase::idle};
  std::atomic<bool> close_requested_{false};

  // connecting (strand)
  std::string host_;
  std::uint16_t port_ = 0;
  clock::time_point deadline_{};
  done_fn done_;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints_;
  bool connect_in_flight_ = false;
  clock::time_point retry_at_{};
  std::string last_connect_error_;

  // handshake (strand)
  clock::time_point handshake_deadline_{};
  handshake::nonce nonce_a_{};
  handshake::nonce nonce_b_{};
  int handshake_step_ = 0;
  bool counted_pending_ = false;  // in core::pending

  // close (strand)
  status close_why_;
  phase close_prev_ = phase::idle;

  // timer (strand)
  std::uint64_t timer_gen_ = 0;

  // reader (strand)
  std::vector<std::uint8_t> rbuf_;
  std::size_t rpos_ = 0;
  std::size_t rend_ = 0;
  read_state rs_ = read_state::header;
  serialization::frame_header hdr_;
  std::vector<std::uint8_t> meta_;
  std::size_t meta_left_ = 0;
  inbound* cur_ = nullptr;
  std::uint8_t* dst_ = nullptr;
  std::size_t dst_left_ = 0;
  bool in_frame_ = false;
  clock::time_point frame_start_{};
  clock::time_point last_recv_{};
  std::size_t unread_seen_ = 0;  // unread bytes on the socket at the last look since a read
  std::unordered_map<std::pair<std::uint8_t, std::uint64_t>, inbound, key_hash> partials_;
  inbound single_;
  std::uint64_t buffered_ = 0;
  // One slice of a sink's message, read from the socket before the sink takes it (allocated
  // at the first such slice, caps::max_slice_bytes, released at close).
  std::unique_ptr<std::uint8_t[]> sink_buf_;
  bool sink_held_ = false;  // the current frame's slice waits for its sink (hold_for_sink)
  boost::asio::steady_timer sink_timer_;

  // shared memory, receiving (strand)
  bool shm_offer_seen_ = false;
  std::unique_ptr<shm_in> shm_in_;
  std::vector<std::uint32_t> shm_releases_;
  // shared memory, sending: shm_offered_ on the strand; shm_out_ under mu_ (the queue uses it)
  bool shm_offered_ = false;
  bool kick_after_read_ = false;  // strand: the writer starts at the end of this read

  // writer (mu_)
  mutable std::mutex mu_;
  bool send_closed_ = false;  ///< close requested or done: new sends fail at once
  bool closed_ = false;       ///< the socket is closed
  bool lingering_ = false;    ///< closing: the write in flight finishes, then GOODBYE
  status close_status_;
  bool writing_ = false;              ///< the async chain owns the writer
  std::unique_ptr<shm_out> shm_out_;  // before q_, which may point to it
  send_queue q_;
  batch batch_;
  std::vector<batch::span> spans_;
  std::vector<boost::asio::const_buffer> wbufs_;
  clock::time_point last_send_{};
  std::uint64_t next_seq_ = 0;
};

// Runs a user callback; one that throws closes the connection (internal) instead of
// unwinding through Asio.
template <class F>
inline bool conn_impl::guarded(const char* what, F&& f) {
  try {
    f();
    return !ended();
  } catch (const std::exception& e) {
    fail(errc::internal, std::string{what} + " threw: " + e.what());
  } catch (...) {
    fail(errc::internal, std::string{what} + " threw");
  }
  return false;
}

}  // namespace kvactor::net::detail

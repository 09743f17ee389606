// kvactor's transport: framed, authenticated, prioritised messages over TCP (Boost.Asio).
// No CAF here: completions are plain callbacks, made on the transport's I/O threads.
//
// A message is one logical unit: a type, an id, an ordering stream, a priority, metadata
// bytes (opaque here; cereal-encoded by the layers above) and a payload of raw bytes (tensor
// data). On the wire a message is one or more frames (see serialization/frame.hpp); payloads
// larger than caps::max_slice_bytes are sent in slices, and slices of different messages
// interleave by priority, so a small urgent message is never stuck behind a 64 MiB one.
// Messages of one stream are delivered in the order they were sent, whatever their
// priorities; across streams, higher priority goes first.
//
// Every connection authenticates before anything else (mutual challenge-response, HMAC-SHA256
// over a shared secret, bound to the cluster id; with identity::tls inside TLS 1.3 keyed from
// the same secret, which also protects every later frame); a peer that fails, stalls or sends
// anything malformed or over a cap is dropped with a logged reason, never the process. Until it has
// authenticated a connection holds a few KiB and no payload memory, and each listener keeps
// at most caps::max_pending_connections such connections (a new one drops the oldest). Idle
// connections exchange heartbeats; a peer silent for caps::peer_timeout is dropped (timeout),
// which is how a frozen process is detected.
//
// Thread-safety: runtime, listener and connection are safe to use from any thread.
// Callbacks run on the runtime's I/O threads, never inside a call into the transport (not
// send(), close(), connect() nor listen()); they must not block. All callbacks of one
// connection (on_open, payload_destination, on_message, on_close, and on_sent of its
// messages) run one at a time on that connection's strand, so they never race each other;
// callbacks of different connections may run concurrently. A callback that throws closes
// its connection with errc::internal. Whatever a handler captures must outlive the runtime:
// handlers may run until ~runtime returns.
//
// Shared memory. When both ends run on one host (same boot, same network namespace, same
// user), each end offers the other, inside the authenticated connection, an anonymous memfd
// segment of its own; once the peer has mapped it (read-only) and said so, payload slices of
// messages of at least caps::shm_min_payload bytes travel through that segment's slots while
// the TCP connection carries only their frame headers (with the slot), so ordering by stream
// and priority, heartbeats, closes and loss detection stay those of TCP. A peer elsewhere, a
// segment that cannot be mapped or verified, all slots busy: the bytes go on the wire as
// before, never an error. KVACTOR_SHM=0 (or caps::shared_memory = false) turns it off for
// this end; it is on with TLS too (the bytes never leave the host; see docs/ARCHITECTURE.md).
// No segment outlives its connection, nor any process (memfd: there is no name to leave).
//
// Both ends should use the same caps: a receiver enforces its own, and a sender keeps within
// its own as if they were the peer's (slice size, partial-message count and bytes).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvactor/buffer_pool.hpp"
#include "kvactor/error.hpp"
#include "kvactor/result.hpp"

namespace kvactor::net {

/// Limits enforced on everything a peer sends, checked before any allocation.
struct caps {
  std::uint32_t max_meta_bytes = 64 * 1024;
  std::uint64_t max_message_bytes = std::uint64_t{4} << 30;  ///< payload of one message
  std::uint32_t max_slice_bytes = 1 << 20;                   ///< payload bytes per frame
  std::size_t max_partial_messages = 256;  ///< messages being reassembled per connection
  std::uint64_t max_buffered_bytes = std::uint64_t{8} << 30;  ///< their payload bytes, summed
  std::chrono::milliseconds handshake_timeout{5000};          ///< connect to authenticated
  std::chrono::milliseconds frame_timeout{10000};             ///< a started frame must complete
  std::chrono::milliseconds heartbeat_interval{500};          ///< sent when nothing else was
  std::chrono::milliseconds peer_timeout{3000};  ///< silence after which a peer is dropped
  /// A close while a write is on the wire waits this long (at most frame_timeout) for that
  /// write, so that the GOODBYE can follow it; on_close runs after. 0: never wait.
  std::chrono::milliseconds close_linger{500};
  /// A message sent in slices must be complete this long after its FIRST frame, or the
  /// connection closes (timeout) and the memory it reserved is released; heartbeats do not
  /// extend it. The default moves max_buffered_bytes at about 1 Gb/s with room to spare.
  std::chrono::milliseconds partial_message_timeout{120000};
  /// Per listener: accepted connections still in the handshake. One more closes the oldest
  /// of them (unauthenticated), so a flood of idle connections costs at most this many
  /// sockets, each a few KiB (no read buffer beyond 1 KiB until it authenticates).
  std::size_t max_pending_connections = 256;
  /// Per listener: at most this many lines per interval about connections that were refused
  /// or failed before authenticating (and failed accepts); the rest are counted and summed up
  /// in one line ("... and K more refused connections") when the interval ends.
  std::size_t refusal_log_lines = 20;
  std::chrono::milliseconds refusal_log_interval{10000};
  /// Shared memory with a co-located peer (above); KVACTOR_SHM=0 turns it off whatever this
  /// says. Messages of at least shm_min_payload bytes use it; this end's segment has
  /// shm_segment_bytes of slots of max_slice_bytes each (address space; pages are touched
  /// only as slots are used, lowest first). Fewer than two slots: no segment.
  bool shared_memory = true;
  std::uint64_t shm_min_payload = 64 * 1024;
  std::uint64_t shm_segment_bytes = std::uint64_t{64} << 20;
  /// A payload slice a payload_sink declined is offered to it again after this long.
  std::chrono::microseconds sink_retry{200};
  /// Tests only: non-zero is mixed into this end's host token, so that two runtimes of one
  /// process can look like two hosts.
  std::uint64_t shm_host_salt = 0;
};

/// Who is at either end, established by the handshake.
struct identity {
  std::string cluster_id;  ///< at most 256 bytes
  std::string secret;      ///< never sent; both ends must hold the same
  std::string role;        ///< "scheduler", "server", "worker", ... (at most 32 bytes)
  std::int64_t rank = -1;
  /// TLS 1.3 under the handshake, keyed from secret and cluster_id (an external PSK derived
  /// with HKDF; no certificates): every frame after the TCP connect is encrypted and
  /// authenticated, so a byte altered in flight closes the connection (unauthenticated)
  /// instead of reaching the application. Both ends must agree; a mismatch is refused at once
  /// with a reason naming the setting. Local to this end, never sent (like secret).
  bool tls = false;
  /// With tls, certificates instead of the PSK when all three are set (PEM files): this
  /// end's certificate (chain), its private key, and the CA certificate(s) the peer's
  /// certificate must verify against. Both ends then present certificates and each verifies
  /// the other's (mutual TLS); the HMAC handshake inside still needs the shared secret. A
  /// peer without a certificate from that CA fails the TLS handshake (unauthenticated).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
};

class payload_sink;

struct message {
  std::uint8_t type = 0;    ///< application type; 0-15 are reserved for the transport
  std::uint16_t flags = 0;  ///< the application's 14 bits, as sent
  std::uint64_t id = 0;
  std::uint64_t stream = 0;
  std::int32_t priority = 0;
  std::vector<std::uint8_t> meta;
  /// The payload: `payload_size` bytes at `payload_data`, which points into `payload_buffer`
  /// (a pooled buffer) or into memory the receiver chose through handlers::payload_destination
  /// (then payload_buffer is null). Both are null for an empty payload, and for a payload the
  /// receiver's payload_sink consumed as it arrived (then `sink` is that sink).
  std::shared_ptr<buffer> payload_buffer;
  void* payload_data = nullptr;
  std::uint64_t payload_size = 0;
  std::shared_ptr<payload_sink> sink;
};

/// What to send. The payload memory must stay valid and unchanged until on_sent runs (even
/// if the peer has answered already); `keepalive` is held until then too. A message the
/// transport cannot send (type below 16, flags beyond 0x3fff, meta or payload over the
/// caps, null payload) is refused with on_sent(invalid_argument), the connection stays open.
struct outgoing {
  std::uint8_t type = 0;    ///< 16-255
  std::uint16_t flags = 0;  ///< 14 bits, delivered unchanged
  std::uint64_t id = 0;
  std::uint64_t stream = 0;
  std::int32_t priority = 0;
  std::vector<std::uint8_t> meta;
  const void* payload = nullptr;
  std::uint64_t payload_size = 0;
  std::shared_ptr<const void> keepalive;
  /// The keepalive's deleter may run inside send() (on the calling thread) when the message
  /// was written there at once: saves a hand-off to the I/O thread per message. Only for
  /// keepalives whose release takes no lock the caller might hold (e.g. a pooled buffer).
  bool release_inline = false;
  /// Called once, on the connection's strand: ok when every byte was handed to the kernel, or
  /// the error that closed the connection first (shut_down when it closed orderly).
  std::function<void(const status&)> on_sent;
};

class connection {
 public:
  virtual ~connection() = default;
  /// Queues m; never blocks. When nothing is queued it writes directly from the calling
  /// thread (non-blocking) and leaves the rest to an I/O thread. On a closed connection,
  /// on_sent gets the closing status.
  virtual void send(outgoing m) = 0;
  /// Closes with `why`, which this end's on_close gets and which a GOODBYE carries to the
  /// peer's on_close (best effort). Queued messages fail. Idempotent: the first reason wins.
  virtual void close(const status& why) = 0;
  /// Between on_open and the first close.
  virtual bool is_open() const = 0;
  /// The peer's role, rank and cluster id as it proved them in the handshake.
  virtual const identity& peer() const = 0;
  /// "host:port" of the peer, and of this end of the socket.
  virtual std::string remote_address() const = 0;
  virtual std::string local_address() const = 0;
};
using connection_ptr = std::shared_ptr<connection>;

/// The header of a message whose payload is about to be read, for payload_sink_for and
/// payload_destination.
struct message_head {
  std::uint8_t type;
  std::uint16_t flags;
  std::uint64_t id;
  std::uint64_t stream;
  const std::vector<std::uint8_t>* meta;
  std::uint64_t payload_size;
  std::int32_t priority = 0;
};

/// Takes one message's payload slice by slice as it arrives, instead of the transport
/// gathering it into one buffer first (handlers::payload_sink_for): the receiver's memory for
/// a payload it folds into something else (a sum) is then one slice, not the whole payload.
/// Calls come on the connection's strand, one at a time. Exactly one of two things ends it:
/// on_message with the message (its payload consumed, `sink` set) once every byte was
/// consumed, or abort() when the connection closes before that.
class payload_sink {
 public:
  virtual ~payload_sink() = default;
  /// Bytes [offset, offset + size) of the payload: every byte exactly once and in order (offset
  /// is the sum of the sizes before), size > 0, at most caps::max_slice_bytes. `data` is the
  /// transport's (a slice buffer of the connection, or the peer's shared-memory slot, which a
  /// hostile peer may even change meanwhile) and valid only during the call. Returns true when
  /// it took them; false declines them for now: the connection then reads nothing more (the
  /// peer is held back by TCP and by its shared-memory slots) and offers the same slice again
  /// after caps::sink_retry, until taken. A connection held that way looks silent: keep it
  /// well under caps::peer_timeout. A throw closes the connection (internal), and abort
  /// follows.
  virtual bool consume(std::uint64_t offset, const void* data, std::size_t size) = 0;
  /// The connection closed before the payload's last byte was consumed (why: never ok; an
  /// orderly close mid-payload is shut_down). At most once, before on_close; nothing is
  /// consumed after it.
  virtual void abort(const status& why) noexcept = 0;
};
using payload_sink_ptr = std::shared_ptr<payload_sink>;

struct handlers {
  /// After a successful handshake, before any message of the connection.
  std::function<void(const connection_ptr&)> on_open;
  /// A whole message, in stream order (delivered when its last frame arrives).
  std::function<void(const connection_ptr&, message&&)> on_message;
  /// Once per opened connection, last of its callbacks, with why it closed: ok for an orderly
  /// close by either end (close(ok), runtime shutdown, the peer's GOODBYE with ok); timeout,
  /// protocol_error, unauthenticated, peer_lost (reset, EOF without GOODBYE) or the peer's
  /// reason otherwise. From then on the transport touches no memory that
  /// payload_destination returned.
  std::function<void(const connection_ptr&, const status&)> on_close;
  /// Optional: where to read a message's payload (at least payload_size bytes, valid until
  /// on_message or on_close), or null for a pooled buffer. Called once per message with a
  /// non-empty payload, after its meta arrived and before its payload is read (after
  /// payload_sink_for, and only when that gave no sink).
  std::function<void*(const connection_ptr&, const message_head&)> payload_destination;
  /// Optional: a sink that consumes the message's payload slice by slice (payload_sink), or
  /// null for payload_destination's way. Called once per message with a non-empty payload,
  /// after its meta arrived and before its payload is read. The slices of a sink's message
  /// come through one buffer of caps::max_slice_bytes per connection (allocated at the first
  /// such message), or straight from the peer's shared-memory slot.
  std::function<payload_sink_ptr(const connection_ptr&, const message_head&)> payload_sink_for;
};

class listener {
 public:
  virtual ~listener() = default;
  virtual std::uint16_t port() const = 0;
  /// Stops accepting; open connections stay. Dropping the last reference does the same.
  virtual void stop() = 0;
};

class runtime {
 public:
  /// threads == 0: one I/O thread. The pool is used for every payload buffer. The first
  /// runtime of a process raises the soft RLIMIT_NOFILE to the hard limit (idle peers must
  /// not starve honest ones of file descriptors at a default of 1024).
  explicit runtime(std::size_t threads = 1, buffer_pool* pool = &buffer_pool::global());
  /// Closes every connection (on_close and every pending on_sent and done run before it
  /// returns), stops the threads. A frozen peer delays it by at most caps::close_linger. Must
  /// not run on one of the runtime's own I/O threads (i.e. inside a handler).
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Listens on host:port (port 0 picks a free one; a name is resolved, first address).
  /// Each accepted connection must complete the handshake as `self`'s peer within
  /// caps::handshake_timeout. invalid_argument for a bad identity or caps, or when the
  /// address cannot be bound; shut_down after shutdown().
  result<std::shared_ptr<listener>> listen(const std::string& host, std::uint16_t port,
                                           identity self, caps c, handlers h);

  /// Connects and authenticates; `done` gets the open connection (on_open has run) or why
  /// not, exactly once, on an I/O thread: peer_lost (unreachable by `deadline`),
  /// unauthenticated (wrong secret or cluster, either direction), timeout (no handshake within
  /// caps::handshake_timeout of the TCP connect), protocol_error, invalid_argument or
  /// shut_down. Refused connections are retried every 50 ms until `deadline` passes (a peer
  /// may still be starting).
  void connect(const std::string& host, std::uint16_t port, identity self, caps c, handlers h,
               std::chrono::steady_clock::time_point deadline,
               std::function<void(result<connection_ptr>)> done);

  /// What the runtime holds now, for monitoring and tests.
  struct stats {
    std::size_t connections = 0;          ///< connecting, in the handshake, open or closing
    std::size_t pending_connections = 0;  ///< accepted, not yet authenticated
    std::uint64_t read_buffer_bytes = 0;  ///< read buffers of all connections together
    /// Shared-memory segments held now: this end's own ones and the peers' it has mapped.
    std::size_t shm_segments = 0;
    /// Payload bytes that went through shared memory since the runtime started, each way.
    std::uint64_t shm_bytes_sent = 0;
    std::uint64_t shm_bytes_received = 0;
  };
  stats get_stats() const;

  /// Closes every connection and listener now, ends connects in flight with shut_down, and
  /// refuses new ones. Asynchronous; ~runtime waits. With ok (the default) the closes are
  /// orderly (on_close gets ok at both ends); with an error, as close(why): each peer's
  /// GOODBYE carries why, so the peers learn the reason rather than "closed in order".
  void shutdown(const status& why = status::ok());

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace kvactor::net

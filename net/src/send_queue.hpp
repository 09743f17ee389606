// A connection's send queue and the batches the writer hands to the kernel. No Asio here.
//
// Scheduling: control frames (handshake, heartbeat, goodbye) first; then, frame by frame, the
// stream with the highest effective priority, where a stream's effective priority is the
// highest priority among its queued messages (priority inheritance: a later urgent message
// lifts the stream instead of overtaking the earlier ones), ties going to the stream whose
// head message was queued first. Within a stream messages go strictly in order. A payload
// larger than max_slice goes out as several frames and the choice is made again after each,
// so a newly queued message of a higher-priority stream goes out between two slices.
//
// The sender keeps within the receiver's reassembly caps (it assumes the peer's caps equal
// its own): a multi-frame message only starts while fewer than max_partial multi-frame
// messages are started and unfinished, their payloads sum to at most max_buffered, and no
// started message has the same (type, id). A message that fits one frame is never partial.
//
// Shared memory (shm.hpp): once the peer has mapped this end's segment, each slice of a
// message of at least the shm threshold is copied into a free slot as its frame is built and
// the frame carries the slot instead of the bytes; with no slot free it goes on the wire. A
// batch holds at most about one budget of such copies, so that the peer sees each slice's
// header as soon as it is copied instead of after a whole run of copies.
//
// Thread-safety: none; the connection guards both classes with its send mutex.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kvactor/detail/recycling_allocator.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/frame.hpp"
#include "shm.hpp"

namespace kvactor::net::detail {

struct pending {
  pending() = default;
  pending(const pending&) = delete;
  pending& operator=(const pending&) = delete;
  // The metadata's vector serves a later message (byte_vector_cache).
  ~pending() { kvactor::detail::byte_vector_cache::give(std::move(m.meta)); }
  outgoing m;
  std::uint64_t seq = 0;   ///< arrival order on the connection
  std::uint64_t sent = 0;  ///< payload bytes put into batches so far
  bool started = false;    ///< the FIRST frame is in a batch
  bool control = false;    ///< a transport frame: no scheduling, no on_sent
};
using pending_ptr = std::shared_ptr<pending>;

/// One gather write: frame headers and metas copied into a staging buffer, payload slices by
/// pointer. Holds every message it references until the write is done.
class batch {
 public:
  /// Asio gathers at most 64 buffers per system call; stay within one call.
  static constexpr std::size_t max_segments = 64;

  struct span {
    const void* data;
    std::size_t size;
  };

  bool empty() const noexcept { return segments_.empty(); }
  std::size_t bytes() const noexcept { return total_; }
  /// Payload bytes of this batch's frames that went through shared memory instead.
  std::size_t shm_bytes() const noexcept { return shm_bytes_; }
  void add_shm(std::size_t n) noexcept { shm_bytes_ += n; }
  std::size_t segments() const noexcept { return segments_.size(); }
  bool done() const noexcept { return written_ == total_; }

  void add_frame(const serialization::frame_header& h, const std::vector<std::uint8_t>* meta,
                 const void* payload, std::size_t payload_size);
  /// The unwritten remainder, in order; valid until the next add_frame, consume or clear.
  void remaining(std::vector<span>& out) const;
  void consume(std::size_t n) noexcept;
  void clear() noexcept;

  /// Messages whose last frame is in this batch (on_sent when the batch is written).
  std::vector<pending_ptr> finished;
  /// Messages with a frame in this batch that continue in a later one.
  std::vector<pending_ptr> refs;

 private:
  struct segment {
    bool staged;
    std::size_t offset;  ///< into staging_, when staged
    const void* data;    ///< otherwise
    std::size_t size;
  };
  void stage(const void* p, std::size_t n);

  std::vector<std::uint8_t> staging_;
  std::vector<segment> segments_;
  std::size_t total_ = 0;
  std::size_t shm_bytes_ = 0;
  std::size_t written_ = 0;
  std::size_t cursor_ = 0;         ///< first segment not completely written
  std::size_t cursor_offset_ = 0;  ///< bytes of it already written
};

class send_queue {
 public:
  send_queue(std::uint32_t max_slice, std::size_t max_partial, std::uint64_t max_buffered);

  void push(pending_ptr p);
  void push_control(pending_ptr p);
  /// Application frames go out only once the handshake is done.
  void enable_application() noexcept { application_ = true; }
  /// From now on slices of messages of at least min_payload bytes go through `out` while it
  /// has a free slot (it must outlive the queue's use of it; null: none), counted in `bytes`.
  void set_shm(shm_out* out, std::uint64_t min_payload,
               std::atomic<std::uint64_t>* bytes) noexcept {
    shm_ = out;
    shm_min_ = min_payload;
    shm_counter_ = bytes;
  }
  bool has_work() const noexcept { return !control_.empty() || (application_ && !order_.empty()); }
  /// Adds frames to b until it holds about `budget` bytes or runs out of segments.
  void fill(batch& b, std::size_t budget);
  /// Everything still queued, for failing on close; the queue is empty afterwards.
  std::vector<pending_ptr> drain();

 private:
  struct sched_key {
    std::int32_t priority;
    std::uint64_t seq;
    std::uint64_t stream;
    bool operator<(const sched_key& o) const noexcept {
      if (priority != o.priority) return priority > o.priority;
      if (seq != o.seq) return seq < o.seq;
      return stream < o.stream;
    }
  };
  struct stream_state {
    std::deque<pending_ptr> q;
    std::multiset<std::int32_t> priorities;
    sched_key key{};
  };
  using msg_key = std::pair<std::uint8_t, std::uint64_t>;

  bool single_frame(const pending& p) const noexcept { return p.m.payload_size <= max_slice_; }
  bool may_start(const pending& p) const;
  stream_state* pick();
  void rekey(stream_state& s);
  // The tree and hash nodes of a message's scheduling (its stream, its priority, the stream's
  // place in order_) are kept when it leaves and reused by the next one: a steady flow of
  // messages allocates none of them.
  stream_state& stream_of(std::uint64_t stream);
  void retire_stream(std::uint64_t stream);
  void add_priority(stream_state& s, std::int32_t priority);
  void drop_priority(stream_state& s, std::int32_t priority);
  void order_insert(const sched_key& k);
  void order_erase(const sched_key& k);

  const std::uint32_t max_slice_;
  const std::size_t max_partial_;
  const std::uint64_t max_buffered_;
  bool application_ = false;
  shm_out* shm_ = nullptr;
  std::uint64_t shm_min_ = 0;
  std::atomic<std::uint64_t>* shm_counter_ = nullptr;
  std::deque<pending_ptr> control_;
  std::unordered_map<std::uint64_t, stream_state> streams_;
  std::set<sched_key> order_;
  std::size_t started_count_ = 0;
  std::uint64_t started_bytes_ = 0;
  std::set<msg_key> started_keys_;
  std::vector<std::unordered_map<std::uint64_t, stream_state>::node_type> spare_streams_;
  std::vector<std::multiset<std::int32_t>::node_type> spare_priorities_;
  std::vector<std::set<sched_key>::node_type> spare_keys_;
};

}  // namespace kvactor::net::detail

// Pushes summed into a dist_sync round's merge buffer as their bytes arrive (issue 13 item 1,
// D4), so that a server holds the value, the round's sum and one slice per connection instead
// of every push of the round whole.
//
// round_intake: one open round's merge buffer while pushes stream into it. Each writer (one
// push) writes its elements in order from 0; the elements below `ready` already hold at least
// one push's values and are added to, the ones above are copied (the first push to reach an
// element initialises it). A writer is at most `ready` (the furthest writer is `ready`), so
// when every writer of the round has written all its elements, each element holds their sum
// whatever the interleaving. The bytes below `ready` are a partial sum until then: nothing may
// read them before every writer of the round has finished (server_core counts them).
//
// push_sink: the transport's payload sink for one push (kvactor/net/transport.hpp): each slice
// goes into the intake (elements cut across slices are carried, misaligned ones bounced); the
// finished push (finish) or why it was cut off (abort) goes to the shard through `deliver`, as
// its server_request, whose `intake` names the round it wrote into. A sink made while its
// shard was busy, or for a push that belongs to the next round, starts pending: it declines
// slices (the transport holds the connection back) and asks again at each offer, for at most
// `patience`; if the round takes the push by then it streams, else it gathers the payload
// whole and delivers it as an ordinary push.
//
// Thread-safety: round_intake::add from any thread (a mutex: pushes from several connections
// may stream into one round; an add holds it for one slice, never for a shard); the merge
// tensor's bytes only as above. A push_sink belongs to one connection's strand.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "kvactor/buffer_pool.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/tensor.hpp"
#include "server_core.hpp"

namespace kvactor::detail {

class round_intake {
 public:
  /// `ready`: elements of `merge` that hold values already (all of them when the round began
  /// with a push received whole; none for a fresh buffer).
  round_intake(tensor merge, std::size_t ready) : merge_(std::move(merge)), ready_(ready) {}

  /// Adds elements [at, at + n) of one push (src: n elements of the merge's type, aligned for
  /// it); copies those no push has reached yet. Throws std::logic_error when a writer skips
  /// ahead of every other (at > ready) or past the end: the caller's protocol is broken.
  void add(std::size_t at, const void* src, std::size_t n);
  std::size_t ready() const;
  const tensor& merge() const noexcept { return merge_; }

 private:
  mutable std::mutex mu_;
  const tensor merge_;
  std::size_t ready_;  // guarded by mu_
};

class push_sink final : public net::payload_sink {
 public:
  using deliver_fn = std::function<void(server_request_ptr)>;
  enum class open_result : std::uint8_t { opened, busy, refused };
  /// Tries to register r in its round (setting r->intake) without waiting for the shard.
  using open_fn = std::function<open_result(const server_request_ptr&)>;
  /// How long a pending sink waits for its shard, or for the round before its push's, before
  /// it takes the push whole: far below the transport's peer timeout, since the connection
  /// reads nothing meanwhile, and a bound on how long a program whose workers wait on each
  /// other in crossed orders can stall.
  static constexpr std::chrono::milliseconds patience{200};

  /// r: the push, registered in its round already (r->intake set), or not yet (then `open`
  /// is asked at each slice until it says opened or refused, or patience runs out).
  /// deliver: hands r to the shard that owns its part (finish and abort).
  push_sink(server_request_ptr r, deliver_fn deliver, open_fn open = {});

  bool consume(std::uint64_t offset, const void* data, std::size_t size) override;
  void abort(const status& why) noexcept override;
  /// The whole payload arrived: delivers the push (an error in its `rejected` if the slices
  /// did not add up to its elements).
  void finish();

 private:
  enum class mode : std::uint8_t { pending, streaming, whole };
  bool settle_mode();
  void write(const std::uint8_t* p, std::size_t n);

  server_request_ptr r_;
  deliver_fn deliver_;
  open_fn open_;
  mode mode_;
  std::chrono::steady_clock::time_point asked_since_{};
  std::shared_ptr<round_intake> intake_;  // streaming
  std::shared_ptr<buffer> whole_;         // whole: the payload, gathered
  std::size_t esize_;
  std::uint64_t total_;                    // payload bytes
  std::uint64_t got_ = 0;                  // bytes consumed
  std::size_t at_ = 0;                     // elements written (streaming)
  alignas(8) std::uint8_t carry_[8] = {};  // an element cut between two slices
  std::size_t carry_n_ = 0;
  bool done_ = false;  // delivered (finish or abort)
};

}  // namespace kvactor::detail

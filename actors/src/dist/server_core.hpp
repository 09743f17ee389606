// What one server shard does with the parts of keys it owns, without CAF or sockets.
//
// dist_sync: each part collects exactly one push per worker per round into a merge buffer
// (the first push's buffer is adopted, later ones are added to it), then applies the
// updater once (or replaces the value), then answers every push of the round. A big push may
// instead be summed into the merge buffer as its bytes arrive (open_intake, push_intake.hpp):
// it takes its worker's place in the round when its first bytes come and counts when its last
// came; until every such push of the round has finished, no other push touches the merge
// buffer (they wait), and a push cut off mid-payload is a refused push (the round fails). A
// worker's second push in a round waits for the next round; a pull from a worker whose push is in
// the open round waits until the round closes, so a worker's pull after its push sees the round's
// result. Everything a worker sends for a part is handled in its order.
// A round that cannot complete fails instead of waiting forever: a push the server refuses
// (wrong shape or type, a bad payload) still is its worker's part of the round, and the round
// then fails for every worker in it (aborted, naming the refused worker; the value stays);
// once a worker has said it pushes no more (worker_left), a round without its push fails the
// same way.
// dist_async: every push is applied at once; an updater is required.
//
// Replies hold the value they send (copy-on-write: an update never writes a buffer a reply
// is still sending).
// Thread-safety: one server_core belongs to one shard, used only under its gate
// (server_gate.hpp: by the shard actor, or by an I/O thread for a request it may serve).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvactor/result.hpp"
#include "kvactor/serialization/optimizer_states.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "kvactor/tensor.hpp"
#include "kvactor/updater.hpp"
#include "part_plan.hpp"

namespace kvactor::detail {

class reply_batch;
class round_intake;

struct server_request {
  wire::msg kind = wire::msg::push;  ///< init, push, pull or pushpull
  wire::data_meta meta;
  std::int64_t worker = -1;           ///< the sender's rank
  tensor payload;                     ///< init/push data: a flat tensor over the received bytes
  std::uint64_t wire_bytes = 0;       ///< bytes the payload took on the wire, when it differs
  std::vector<std::int64_t> row_ids;  ///< push_rows/pull_rows: rows of the part (sorted, unique)
  tensor row_data;                    ///< push_rows: one row per id
  /// The part_hash of its key part (the dispatcher's: its shard, and its count in the gate).
  std::uint64_t route = 0;
  /// Not ok: the server refused the request before decoding its payload (it still takes its
  /// place in its worker's order and, for a push, in the dist_sync round).
  status rejected;
  /// Sends the answer: a status, and for pull and pushpull the part's value.
  std::function<void(const status&, const tensor* value)> reply;
  /// The worker's id and priority of the request (in a fused batch, its entry's), and for
  /// a batch's request the batch that gathers its answer with its batch-mates'
  /// (reply_batch.hpp).
  std::uint64_t id = 0;
  std::int32_t priority = 0;
  std::shared_ptr<reply_batch> batch;
  /// The timeline's (kvactor/detail/timeline.hpp): when the request arrived (0: not traced).
  std::int64_t trace_received = 0;
  /// A push summed into its round as it arrived (open_intake): the round it writes into. It
  /// comes back to handle() when its payload ended (an error in `rejected` if cut off); its
  /// `payload` stays empty.
  std::shared_ptr<round_intake> intake;
};
using server_request_ptr = std::shared_ptr<server_request>;

/// Requests handled while profiling, by kind (init, push, pull, pushpull).
struct server_profile {
  std::uint64_t count[4] = {0, 0, 0, 0};
  std::uint64_t bytes_in[4] = {0, 0, 0, 0};
  std::uint64_t busy_ns = 0;
};

/// What MXNet's set_gradient_compression command configured ("none" until set).
struct compression_config {
  std::string type = "none";
  double threshold = 0.5;
};

/// "key 7" or "key 7 (part 2 of 4)", as a server's errors name a key part.
std::string part_name(const key& k, std::uint32_t part, std::uint32_t parts);

class server_core {
 public:
  explicit server_core(std::uint32_t num_workers);

  void handle(server_request_ptr r);
  enum class intake_answer : std::uint8_t { opened, after_round, refused };
  /// A dense dist_sync push whose payload is about to arrive: registers it in its part's open
  /// round, its bytes to go into r->intake (opened); or not now, since it belongs to the next
  /// round (its worker's push is in this one, or requests of it wait) (after_round: asking
  /// again once the round closed may open it); or not at all (refused: the ordinary way,
  /// received whole, then handle()): a single worker (adopting its buffer is cheaper),
  /// dist_async, a part not initialized here, another shape or type, a round of row-sparse
  /// pushes or one that will fail (either may need this very push to close).
  intake_answer open_intake(const server_request_ptr& r);  // push_intake.cpp
  void set_updater(std::shared_ptr<const updater> u);
  void set_sync(bool sync) { sync_ = sync; }
  /// float16/bfloat16 values are updated through a float32 master copy.
  void set_multi_precision(bool on);
  void set_compression(compression_config c) { compression_ = std::move(c); }
  const compression_config& compression() const noexcept { return compression_; }
  void set_profiling(bool on) { profiling_ = on; }
  const server_profile& profile() const noexcept { return profile_; }
  void reset_profile() { profile_ = {}; }
  bool sync() const noexcept { return sync_; }
  /// Whether a push may ever stream into a round here (open_intake can say opened): dist_sync
  /// with more than one worker.
  bool streams() const noexcept { return sync_ && num_workers_ > 1; }
  /// Answers everything waiting (open rounds, deferred requests) with s.
  void fail_all(const status& s);
  /// Worker w pushes no more (its store is shutting down): every dist_sync round that lacks
  /// its push, and has none of its pushes queued, fails now and from now on.
  void worker_left(std::int64_t w);

  /// The optimizer state of every part, as file records (deep copies).
  std::vector<wire::key_state_record> snapshot_states() const;
  /// How many of recs name parts of this shard; an error if one of them does not fit the
  /// state `upd` keeps (its slot count, types, shapes).
  result<std::size_t> check_states(const std::vector<wire::key_state_record>& recs,
                                   const std::shared_ptr<const updater>& upd) const;
  /// Installs the states of recs for parts of this shard (checked first with check_states).
  void restore_states(const std::vector<wire::key_state_record>& recs);
  const std::shared_ptr<const updater>& effective_updater() const noexcept { return effective_; }

  std::size_t num_parts() const noexcept { return parts_.size(); }
  std::size_t held_bytes() const noexcept;

 private:
  struct part_id {
    key k;
    std::uint32_t part;
    friend bool operator==(const part_id& a, const part_id& b) {
      return a.part == b.part && a.k == b.k;
    }
  };
  struct part_hash {
    std::size_t operator()(const part_id& p) const noexcept {
      return static_cast<std::size_t>(::kvactor::detail::part_hash(p.k.hash(), p.part));
    }
  };
  struct part {
    std::uint32_t num_parts = 1;  // of its key
    tensor stored;
    tensor merge;                       // the open round's sum
    bool merge_rows_only = false;       // every push of the open round was row-sparse
    std::vector<std::uint8_t> touched;  // rows those pushes touched
    std::uint32_t round_count = 0;
    std::vector<std::uint8_t> contributed;  // by worker rank, this round
    std::vector<server_request_ptr> round;  // pushes to answer when the round closes
    std::vector<std::string> refused;       // this round's refused pushes, described
    std::deque<server_request_ptr> deferred;
    std::vector<std::uint32_t> deferred_by_worker;
    std::shared_ptr<round_intake> intake;  // the open round's, while pushes stream into it
    std::uint32_t streaming = 0;           // its pushes not finished yet
    std::shared_ptr<const updater> state_owner;
    std::unique_ptr<updater_state> state;
  };

  void handle_profiled(server_request_ptr r);
  void handle_in(part& p, const part_id& id, server_request_ptr r);
  void defer(part& p, server_request_ptr r);
  bool must_wait(const part& p, const server_request& r) const;
  bool worker_waits(const part& p, const server_request& r) const;
  void end_intake(part& p, const part_id& id, const server_request_ptr& r);  // push_intake.cpp
  void replay_deferred(part& p, const part_id& id);
  status check_data(const part& p, const server_request& r) const;
  void push_sync(part& p, const part_id& id, server_request_ptr r);
  void push_async(part& p, const part_id& id, const server_request_ptr& r);
  status check_rows(const part& p, const server_request& r) const;
  void add_rows(part& p, const server_request& r);
  status apply_rows(part& p, const part_id& id, const std::vector<std::int64_t>& ids,
                    const tensor& rows);
  void refuse_push(part& p, const part_id& id, const server_request_ptr& r, const status& why);
  void settle_round(part& p, const part_id& id);
  std::string departed_missing(const part& p) const;
  void close_round(part& p, const part_id& id, const status& failed = {});
  status apply(part& p, const part_id& id, const tensor& merged);
  void reply_value(const server_request& r, const part& p);

  std::uint32_t num_workers_;
  bool sync_ = true;
  bool multi_precision_ = false;
  std::shared_ptr<const updater> effective_;  // updater_, wrapped under multi-precision
  bool profiling_ = false;
  server_profile profile_;
  compression_config compression_;
  std::shared_ptr<const updater> updater_;
  std::unordered_map<part_id, part, part_hash> parts_;
  std::vector<std::uint8_t> departed_;  // by worker rank: said it pushes no more
};

}  // namespace kvactor::detail

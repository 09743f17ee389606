#include "server_core.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "../multi_precision.hpp"
#include "kvactor/detail/kernels.hpp"
#include "kvactor/detail/timeline.hpp"
#include "push_intake.hpp"

namespace kvactor::detail {

namespace {

// The timeline: a step of this shard's thread on a key part (t0 is 0 when it was off).
void trace_step(const char* what, const key& k, std::uint32_t part, std::int64_t t0,
                std::size_t bytes) {
  if (!t0) return;
  timeline::name_thread("actor", 2);
  timeline::span("server", what, t0, timeline::now_ns(),
                 timeline::args{k.to_string()}
                     .with("part", part)
                     .with("bytes", static_cast<std::int64_t>(bytes)));
}

std::int64_t trace_now() {
  return timeline::enabled() ? timeline::now_ns() : 0;
}

}  // namespace

std::string part_name(const key& k, std::uint32_t part, std::uint32_t parts) {
  std::string s = "key " + k.to_string();
  if (parts > 1) s += " (part " + std::to_string(part) + " of " + std::to_string(parts) + ")";
  return s;
}

namespace {

// The name of a request's part, built only for an error (every request is checked).
std::string name_of(const server_request& r) {
  return part_name(r.meta.key.to_key(), r.meta.part, r.meta.num_parts);
}

}  // namespace

server_core::server_core(std::uint32_t num_workers) : num_workers_(num_workers) {}

std::size_t server_core::held_bytes() const noexcept {
  std::size_t n = 0;
  for (const auto& [id, p] : parts_)
    n += p.stored.nbytes() + p.merge.nbytes();
  return n;
}

void server_core::handle(server_request_ptr r) {
  if (profiling_) {
    int k = static_cast<int>(r->kind) - static_cast<int>(wire::msg::init);
    if (r->kind == wire::msg::push_rows) k = 1;  // counted with push
    if (r->kind == wire::msg::pull_rows) k = 2;  // and pull
    if (k >= 0 && k < 4) {
      ++profile_.count[k];
      profile_.bytes_in[k] +=
          r->wire_bytes ? r->wire_bytes
                        : r->payload.nbytes() + r->row_data.nbytes() + 8 * r->row_ids.size();
    }
    const auto t0 = std::chrono::steady_clock::now();
    handle_profiled(std::move(r));
    profile_.busy_ns += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count());
    return;
  }
  handle_profiled(std::move(r));
}

void server_core::handle_profiled(server_request_ptr r) {
  part_id id{r->meta.key.to_key(), r->meta.part};
  auto it = parts_.find(id);
  if (it == parts_.end()) {
    if (r->kind != wire::msg::init) {
      r->reply(status{errc::not_initialized,
                      part_name(id.k, id.part, r->meta.num_parts) + " is not initialized"},
               nullptr);
      return;
    }
    it = parts_.emplace(id, part{}).first;
  }
  handle_in(it->second, id, std::move(r));
}

bool server_core::worker_waits(const part& p, const server_request& r) const {
  const auto w = static_cast<std::size_t>(r.worker);
  if (w < p.deferred_by_worker.size() && p.deferred_by_worker[w] > 0) return true;  // keep order
  if (!sync_ || r.kind == wire::msg::init) return false;
  // A worker whose push is in the open round: its next push belongs to the next round, and
  // its pull must see this round's result.
  return w < p.contributed.size() && p.contributed[w];
}

bool server_core::must_wait(const part& p, const server_request& r) const {
  if (worker_waits(p, r)) return true;
  // While pushes stream into the merge buffer it holds partial sums: no other push may add to
  // it (nor adopt, refuse or close the round) until they have finished.
  return p.streaming > 0 && (r.kind == wire::msg::push || r.kind == wire::msg::pushpull ||
                             r.kind == wire::msg::push_rows);
}

void server_core::defer(part& p, server_request_ptr r) {
  const auto w = static_cast<std::size_t>(r->worker);
  if (p.deferred_by_worker.size() <= w) p.deferred_by_worker.resize(w + 1, 0);
  ++p.deferred_by_worker[w];
  p.deferred.push_back(std::move(r));
}

status server_core::check_data(const part& p, const server_request& r) const {
  if (!p.stored.defined()) return status{errc::not_initialized, name_of(r) + " is not initialized"};
  if (r.meta.numel != p.stored.size())
    return status{errc::shape_mismatch, name_of(r) + ": " + std::to_string(r.meta.numel) +
                                            " elements sent, the server holds " +
                                            std::to_string(p.stored.size())};
  if (r.meta.dtype != static_cast<std::uint8_t>(p.stored.dtype()))
    return status{errc::dtype_mismatch, name_of(r) + ": element type differs from the stored " +
                                            to_string(p.stored.dtype())};
  if (r.kind != wire::msg::pull && r.payload.size() != p.stored.size())
    return status{errc::protocol_error, name_of(r) + ": payload size does not match its metadata"};
  return {};
}

void server_core::handle_in(part& p, const part_id& id, server_request_ptr r) {
  if (r->worker < 0 || r->worker >= static_cast<std::int64_t>(num_workers_)) {
    r->reply(status{errc::protocol_error,
                    "request from unknown worker rank " + std::to_string(r->worker)},
             nullptr);
    return;
  }
  if (r->intake) return end_intake(p, id, r);
  if (must_wait(p, *r)) {
    defer(p, std::move(r));
    return;
  }
  const bool pushes = r->kind == wire::msg::push || r->kind == wire::msg::pushpull ||
                      r->kind == wire::msg::push_rows;
  if (!r->rejected.is_ok()) {
    if (pushes) return refuse_push(p, id, r, r->rejected);
    return r->reply(r->rejected, nullptr);
  }
  switch (r->kind) {
    case wire::msg::init: {
      if (p.stored.defined()) {
        r->reply(status{errc::already_initialized,
                        part_name(id.k, id.part, r->meta.num_parts) + " is already initialized"},
                 nullptr);
        return;
      }
      p.stored = r->payload;
      r->payload = tensor{};
      p.num_parts = r->meta.num_parts;
      p.contributed.assign(num_workers_, 0);
      r->reply(status{}, nullptr);
      return;
    }
    case wire::msg::pull: {
      if (auto s = check_data(p, *r); !s) return r->reply(s, nullptr);
      reply_value(*r, p);
      return;
    }
    case wire::msg::pull_rows: {
      if (auto s = check_rows(p, *r); !s) return r->reply(s, nullptr);
      // The requested rows only, gathered into a reply buffer of their own.
      const std::size_t row = static_cast<std::size_t>(r->meta.row);
      const std::size_t bytes = row * size_of(p.stored.dtype());
      tensor out = tensor::empty(
          {static_cast<std::int64_t>(r->row_ids.size()), static_cast<std::int64_t>(row)},
          p.stored.dtype());
      for (std::size_t i = 0; i < r->row_ids.size(); ++i)
        std::memcpy(static_cast<char*>(out.data_unchecked()) + i * bytes,
                    static_cast<const char*>(p.stored.data_unchecked()) +
                        static_cast<std::size_t>(r->row_ids[i]) * bytes,
                    bytes);
      r->reply(status{}, &out);
      return;
    }
    case wire::msg::push_rows: {
      if (auto s = check_rows(p, *r); !s) return refuse_push(p, id, r, s);
      if (!sync_) {
        if (!effective_) {
          r->reply(status{errc::invalid_argument,
                          "dist_async: no optimizer is set on the servers (call set_optimizer); " +
                              part_name(id.k, id.part, r->meta.num_parts) + " is unchanged"},
                   nullptr);
          return;
        }
        r->reply(apply_rows(p, id, r->row_ids, r->row_data), nullptr);
        return;
      }
      if (p.round_count == 0) {
        p.merge = tensor::zeros(p.stored.shape(), p.stored.dtype());
        p.merge_rows_only = true;
        p.touched.assign(p.stored.size() / static_cast<std::size_t>(r->meta.row), 0);
      }
      add_rows(p, *r);
      r->row_data = tensor{};
      p.contributed[static_cast<std::size_t>(r->worker)] = 1;
      ++p.round_count;
      p.round.push_back(std::move(r));
      return settle_round(p, id);
    }
    case wire::msg::push:
    case wire::msg::pushpull: {
      if (auto s = check_data(p, *r); !s) return refuse_push(p, id, r, s);
      if (sync_)
        push_sync(p, id, std::move(r));
      else
        push_async(p, id, r);
      return;
    }
    default:
      r->reply(status{errc::protocol_error, "unexpected request type"}, nullptr);
  }
}

void server_core::push_sync(part& p, const part_id& id, server_request_ptr r) {
  if (p.round_count == 0) {
    p.merge = r->payload;  // adopt the received buffer: no copy for the first push
    p.merge_rows_only = false;
  } else {
    p.merge_rows_only = false;
    const std::int64_t t0 = trace_now();
    kernels::accumulate(p.merge.dtype(), p.merge.data_unchecked(), r->payload.data_unchecked(), 0,
                        p.merge.size());
    trace_step("merge", id.k, id.part, t0, p.merge.nbytes());
  }
  r->payload = tensor{};
  p.contributed[static_cast<std::size_t>(r->worker)] = 1;
  ++p.round_count;
  p.round.push_back(std::move(r));
  settle_round(p, id);
}

void server_core::refuse_push(part& p, const part_id& id, const server_request_ptr& r,
                              const status& why) {
  r->reply(why, nullptr);
  // Without a round (dist_async, or a key not initialized here: every worker's push is refused
  // alike) the refusal concerns its sender alone.
  if (!sync_ || !p.stored.defined()) return;
  const auto w = static_cast<std::size_t>(r->worker);
  p.contributed[w] = 1;
  ++p.round_count;
  p.refused.push_back("worker " + std::to_string(w) + "'s push was refused (" + why.to_string() +
                      ")");
  settle_round(p, id);
}

std::string server_core::departed_missing(const part& p) const {
  std::string names;
  for (std::size_t w = 0; w < departed_.size() && w < p.contributed.size(); ++w) {
    if (!departed_[w] || p.contributed[w]) continue;
    const bool queued = std::any_of(p.deferred.begin(), p.deferred.end(), [w](const auto& r) {
      return static_cast<std::size_t>(r->worker) == w && r->kind != wire::msg::pull &&
             r->kind != wire::msg::pull_rows;
    });
    if (!queued) names += (names.empty() ? "worker " : ", worker ") + std::to_string(w);
  }
  return names;
}

// Closes the round when every worker is in it, or fails it when it can never complete.
void server_core::settle_round(part& p, const part_id& id) {
  if (p.round_count == 0) return;
  if (p.round_count == num_workers_ && p.refused.empty()) return close_round(p, id);
  // The messages are built only for a round that fails (every round passes here).
  const auto what = [&] {
    return "the dist_sync round of " + part_name(id.k, id.part, p.num_parts) + " was abandoned: ";
  };
  const char* kept = "; the stored value is unchanged";
  if (p.round_count == num_workers_) {
    std::string all;
    for (const auto& r : p.refused)
      all += (all.empty() ? "" : "; ") + r;
    return close_round(p, id, status{errc::aborted, what() + all + kept});
  }
  const std::string gone = departed_missing(p);
  if (!gone.empty())
    close_round(p, id,
                status{errc::aborted,
                       what() + gone + " left (its store shut down) without pushing to it" + kept});
}

void server_core::worker_left(std::int64_t w) {
  if (w < 0 || w >= static_cast<std::int64_t>(num_workers_)) return;
  departed_.resize(num_workers_, 0);
  departed_[static_cast<std::size_t>(w)] = 1;
  for (auto& [id, p] : parts_)
    settle_round(p, id);
}

void server_core::close_round(part& p, const part_id& id, const status& failed) {
  const std::int64_t t0 = trace_now();
  status s = failed;
  if (!failed.is_ok()) {
    // Nothing of the round is applied (pushes still streaming write into a buffer it drops).
  } else if (p.intake && (p.streaming != 0 || p.intake->ready() != p.merge.size())) {
    s = status{errc::internal, "the dist_sync round of " + part_name(id.k, id.part, p.num_parts) +
                                   " closed before its pushes were summed; the stored value "
                                   "is unchanged"};
  } else if (p.merge_rows_only && effective_) {
    // Only the rows some worker pushed are merged and updated (lazily where the optimizer can).
    std::vector<std::int64_t> ids;
    for (std::size_t i = 0; i < p.touched.size(); ++i)
      if (p.touched[i]) ids.push_back(static_cast<std::int64_t>(i));
    const std::size_t row = p.stored.size() / p.touched.size();
    const std::size_t bytes = row * size_of(p.stored.dtype());
    tensor rows = tensor::empty(
        {static_cast<std::int64_t>(ids.size()), static_cast<std::int64_t>(row)}, p.stored.dtype());
    for (std::size_t i = 0; i < ids.size(); ++i)
      std::memcpy(static_cast<char*>(rows.data_unchecked()) + i * bytes,
                  static_cast<const char*>(p.merge.data_unchecked()) +
                      static_cast<std::size_t>(ids[i]) * bytes,
                  bytes);
    s = apply_rows(p, id, ids, rows);
  } else {
    s = apply(p, id, p.merge);
  }
  trace_step("update", id.k, id.part, failed.is_ok() ? t0 : 0, p.stored.nbytes());
  p.merge_rows_only = false;
  p.touched.clear();
  p.refused.clear();
  p.merge = tensor{};
  p.intake.reset();
  p.streaming = 0;
  p.round_count = 0;
  std::fill(p.contributed.begin(), p.contributed.end(), 0);
  std::vector<server_request_ptr> round;
  round.swap(p.round);
  for (auto& r : round) {
    if (s.is_ok() && r->kind == wire::msg::pushpull)
      reply_value(*r, p);
    else
      r->reply(s, nullptr);
  }
  // The next round reuses the vector (a part left with a moved-from one allocated per round).
  round.clear();
  if (p.round.empty()) p.round.swap(round);
  replay_deferred(p, id);
}

// Requests that waited (for the round, or for its streams), in arrival order; some may wait
// again.
void server_core::replay_deferred(part& p, const part_id& id) {
  // Most rounds leave none; a deque moved from allocates a new empty one.
  if (p.deferred.empty()) return;
  auto waiting = std::move(p.deferred);
  p.deferred.clear();
  std::fill(p.deferred_by_worker.begin(), p.deferred_by_worker.end(), 0);
  for (auto& r : waiting)
    handle_in(p, id, std::move(r));
}

status server_core::check_rows(const part& p, const server_request& r) const {
  if (!p.stored.defined()) return status{errc::not_initialized, name_of(r) + " is not initialized"};
  if (r.meta.numel != p.stored.size() ||
      r.meta.dtype != static_cast<std::uint8_t>(p.stored.dtype()))
    return status{errc::shape_mismatch,
                  name_of(r) + ": row request does not match the stored part"};
  const auto rows = static_cast<std::int64_t>(p.stored.size() / r.meta.row);
  for (std::size_t i = 0; i < r.row_ids.size(); ++i)
    if (r.row_ids[i] < 0 || r.row_ids[i] >= rows || (i && r.row_ids[i] <= r.row_ids[i - 1]))
      return status{errc::protocol_error,
                    name_of(r) + ": bad row id " + std::to_string(r.row_ids[i])};
  return {};
}

void server_core::add_rows(part& p, const server_request& r) {
  const std::size_t row = static_cast<std::size_t>(r.meta.row);
  const dtype t = p.stored.dtype();
  const std::size_t bytes = row * size_of(t);
  for (std::size_t i = 0; i < r.row_ids.size(); ++i) {
    const auto at = static_cast<std::size_t>(r.row_ids[i]);
    kernels::accumulate(t, static_cast<char*>(p.merge.data_unchecked()) + at * bytes,
                        static_cast<const char*>(r.row_data.data_unchecked()) + i * bytes, 0, row);
    if (p.merge_rows_only) p.touched[at] = 1;
  }
}

status server_core::apply_rows(part& p, const part_id& id, const std::vector<std::int64_t>& ids,
                               const tensor& rows) {
  if (!effective_) return status{errc::internal, "apply_rows without an updater"};
  if (p.stored.storage_ptr().use_count() > 1) p.stored = p.stored.copy();
  const std::size_t row = ids.empty() ? 1 : rows.size() / ids.size();
  const std::int64_t nrows =
      static_cast<std::int64_t>(p.stored.size() / std::max<std::size_t>(row, 1));
  try {
    if (p.state_owner != effective_) {
      p.state = effective_->make_state(id.k, p.stored);
      p.state_owner = effective_;
    }
    if (effective_->lazy_rows()) {
      // The part as a table of rows, so the optimizer finds row i at i * row.
      tensor table = p.stored.reshape({nrows, static_cast<std::int64_t>(row)});
      effective_->update_rows(id.k, ids.data(), ids.size(), rows, table, p.state.get());
    } else {
      tensor dense = tensor::zeros(p.stored.shape(), p.stored.dtype());
      const std::size_t bytes = row * size_of(p.stored.dtype());
      for (std::size_t i = 0; i < ids.size(); ++i)
        std::memcpy(
            static_cast<char*>(dense.data_unchecked()) + static_cast<std::size_t>(ids[i]) * bytes,
            static_cast<const char*>(rows.data_unchecked()) + i * bytes, bytes);
      effective_->update(id.k, dense, p.stored, p.state.get());
    }
  } catch (const std::exception& e) {
    return status{errc::updater_failed,
                  "the optimizer failed on " + part_name(id.k, id.part, 1) + ": " + e.what()};
  }
  return {};
}

void server_core::push_async(part& p, const part_id& id, const server_request_ptr& r) {
  if (!effective_) {
    r->reply(status{errc::invalid_argument,
                    "dist_async: no optimizer is set on the servers (call set_optimizer); " +
                        part_name(id.k, id.part, r->meta.num_parts) + " is unchanged"},
             nullptr);
    return;
  }
  const std::int64_t t0 = trace_now();
  const status s = apply(p, id, r->payload);
  trace_step("update", id.k, id.part, t0, p.stored.nbytes());
  r->payload = tensor{};
  if (s.is_ok() && r->kind == wire::msg::pushpull)
    reply_value(*r, p);
  else
    r->reply(s, nullptr);
}

void server_core::set_updater(std::shared_ptr<const updater> u) {
  updater_ = std::move(u);
  effective_ = multi_precision_ ? with_multi_precision(updater_) : updater_;
}

void server_core::set_multi_precision(bool on) {
  multi_precision_ = on;
  effective_ = multi_precision_ ? with_multi_precision(updater_) : updater_;
}

status server_core::apply(part& p, const part_id& id, const tensor& merged) {
  if (!effective_) {
    p.stored = merged;  // replace: the merge buffer becomes the value
    return {};
  }
  // Copy on write: a reply may still be sending the current value.
  if (p.stored.storage_ptr().use_count() > 1) p.stored = p.stored.copy();
  try {
    if (p.state_owner != effective_) {
      p.state = effective_->make_state(id.k, p.stored);
      p.state_owner = effective_;
    }
    effective_->update(id.k, merged, p.stored, p.state.get());
  } catch (const std::exception& e) {
    return status{errc::updater_failed,
                  "the optimizer failed on " + part_name(id.k, id.part, 1) + ": " + e.what()};
  }
  return {};
}

void server_core::reply_value(const server_request& r, const part& p) {
  const tensor value = p.stored;  // the reply keeps this buffer alive while it sends
  r.reply(status{}, &value);
}

void server_core::fail_all(const status& s) {
  for (auto& [id, p] : parts_) {
    for (auto& r : p.round)
      r->reply(s, nullptr);
    for (auto& r : p.deferred)
      r->reply(s, nullptr);
    p.round.clear();
    p.deferred.clear();
    p.round_count = 0;
    p.refused.clear();
    p.merge = tensor{};
    p.intake.reset();
    p.streaming = 0;
    std::fill(p.contributed.begin(), p.contributed.end(), 0);
    std::fill(p.deferred_by_worker.begin(), p.deferred_by_worker.end(), 0);
  }
}

}  // namespace kvactor::detail

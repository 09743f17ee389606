#include "server_core.hpp"

#include <chrono>

#include "kvactor/kernels.hpp"

namespace kvactor::detail {

namespace {
std::string part_name(const key& k, std::uint32_t part, std::uint32_t parts) {
  std::string s = "key " + k.to_string();
  if (parts > 1) s += " (part " + std::to_string(part) + " of " + std::to_string(parts) + ")";
  return s;
}
}  // namespace

server_core::server_core(std::uint32_t num_workers) : num_workers_(num_workers) {}

std::size_t server_core::held_bytes() const noexcept {
  std::size_t n = 0;
  for (const auto& [id, p] : parts_) n += p.stored.nbytes() + p.merge.nbytes();
  return n;
}

void server_core::handle(server_request_ptr r) {
  if (profiling_) {
    const auto k = static_cast<int>(r->kind) - static_cast<int>(wire::msg::init);
    if (k >= 0 && k < 4) {
      ++profile_.count[k];
      profile_.bytes_in[k] += r->payload.nbytes();
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

bool server_core::must_wait(const part& p, const server_request& r) const {
  const auto w = static_cast<std::size_t>(r.worker);
  if (w < p.deferred_by_worker.size() && p.deferred_by_worker[w] > 0) return true;  // keep order
  if (!sync_ || r.kind == wire::msg::init) return false;
  // A worker whose push is in the open round: its next push belongs to the next round, and
  // its pull must see this round's result.
  return w < p.contributed.size() && p.contributed[w];
}

void server_core::defer(part& p, server_request_ptr r) {
  const auto w = static_cast<std::size_t>(r->worker);
  if (p.deferred_by_worker.size() <= w) p.deferred_by_worker.resize(w + 1, 0);
  ++p.deferred_by_worker[w];
  p.deferred.push_back(std::move(r));
}

status server_core::check_data(const part& p, const server_request& r) const {
  const std::string name = part_name(r.meta.key.to_key(), r.meta.part, r.meta.num_parts);
  if (!p.stored.defined()) return status{errc::not_initialized, name + " is not initialized"};
  if (r.meta.numel != p.stored.size())
    return status{errc::shape_mismatch, name + ": " + std::to_string(r.meta.numel) +
                                            " elements sent, the server holds " +
                                            std::to_string(p.stored.size())};
  if (r.meta.dtype != static_cast<std::uint8_t>(p.stored.dtype()))
    return status{errc::dtype_mismatch, name + ": element type differs from the stored " +
                                            to_string(p.stored.dtype())};
  if (r.kind != wire::msg::pull && r.payload.size() != p.stored.size())
    return status{errc::protocol_error, name + ": payload size does not match its metadata"};
  return {};
}

void server_core::handle_in(part& p, const part_id& id, server_request_ptr r) {
  if (r->worker < 0 || r->worker >= static_cast<std::int64_t>(num_workers_)) {
    r->reply(status{errc::protocol_error, "request from unknown worker rank " +
                                              std::to_string(r->worker)},
             nullptr);
    return;
  }
  if (must_wait(p, *r)) {
    defer(p, std::move(r));
    return;
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
      p.contributed.assign(num_workers_, 0);
      r->reply(status{}, nullptr);
      return;
    }
    case wire::msg::pull: {
      if (auto s = check_data(p, *r); !s) return r->reply(s, nullptr);
      reply_value(*r, p);
      return;
    }
    case wire::msg::push:
    case wire::msg::pushpull: {
      if (auto s = check_data(p, *r); !s) return r->reply(s, nullptr);
      if (sync_)
        push_sync(p, id, std::move(r));
      else
        push_async(p, id, std::move(r));
      return;
    }
    default:
      r->reply(status{errc::protocol_error, "unexpected request type"}, nullptr);
  }
}

void server_core::push_sync(part& p, const part_id& id, server_request_ptr r) {
  if (p.round_count == 0) {
    p.merge = r->payload;  // adopt the received buffer: no copy for the first push
  } else {
    kernels::accumulate(p.merge.dtype(), p.merge.data_unchecked(), r->payload.data_unchecked(), 0,
                        p.merge.size());
  }
  r->payload = tensor{};
  p.contributed[static_cast<std::size_t>(r->worker)] = 1;
  ++p.round_count;
  p.round.push_back(std::move(r));
  if (p.round_count == num_workers_) close_round(p, id);
}

void server_core::close_round(part& p, const part_id& id) {
  const status s = apply(p, id, p.merge);
  p.merge = tensor{};
  p.round_count = 0;
  std::fill(p.contributed.begin(), p.contributed.end(), 0);
  auto round = std::move(p.round);
  p.round.clear();
  for (auto& r : round) {
    if (s.is_ok() && r->kind == wire::msg::pushpull)
      reply_value(*r, p);
    else
      r->reply(s, nullptr);
  }
  // Requests that waited for this round, in arrival order; some may wait again.
  auto waiting = std::move(p.deferred);
  p.deferred.clear();
  std::fill(p.deferred_by_worker.begin(), p.deferred_by_worker.end(), 0);
  for (auto& r : waiting) handle_in(p, id, std::move(r));
}

void server_core::push_async(part& p, const part_id& id, server_request_ptr r) {
  if (!updater_) {
    r->reply(status{errc::invalid_argument,
                    "dist_async: no optimizer is set on the servers (call set_optimizer); " +
                        part_name(id.k, id.part, r->meta.num_parts) + " is unchanged"},
             nullptr);
    return;
  }
  const status s = apply(p, id, r->payload);
  r->payload = tensor{};
  if (s.is_ok() && r->kind == wire::msg::pushpull)
    reply_value(*r, p);
  else
    r->reply(s, nullptr);
}

status server_core::apply(part& p, const part_id& id, const tensor& merged) {
  if (!updater_) {
    p.stored = merged;  // replace: the merge buffer becomes the value
    p.master = tensor{};
    return {};
  }
  // Copy on write: a reply may still be sending the current value.
  if (p.stored.storage_ptr().use_count() > 1) p.stored = p.stored.copy();
  const bool low = p.stored.dtype() == dtype::float16 || p.stored.dtype() == dtype::bfloat16;
  try {
    if (multi_precision_ && low) {
      // The update runs in float32 on the master copy; the stored value is its rounding.
      if (!p.master.defined()) p.master = p.stored.astype(dtype::float32);
      const tensor merged32 = merged.astype(dtype::float32);
      if (p.state_owner != updater_) {
        p.state = updater_->make_state(id.k, p.master);
        p.state_owner = updater_;
      }
      updater_->update(id.k, merged32, p.master, p.state.get());
      kernels::cast(dtype::float32, p.master.data_unchecked(), p.stored.dtype(),
                    p.stored.data_unchecked(), 0, p.stored.size());
      return {};
    }
    p.master = tensor{};
    if (p.state_owner != updater_) {
      p.state = updater_->make_state(id.k, p.stored);
      p.state_owner = updater_;
    }
    updater_->update(id.k, merged, p.stored, p.state.get());
  } catch (const std::exception& e) {
    return status{errc::updater_failed, "the optimizer failed on " +
                                            part_name(id.k, id.part, 1) + ": " + e.what()};
  }
  return {};
}

void server_core::reply_value(const server_request& r, const part& p) {
  const tensor value = p.stored;  // the reply keeps this buffer alive while it sends
  r.reply(status{}, &value);
}

void server_core::fail_all(const status& s) {
  for (auto& [id, p] : parts_) {
    for (auto& r : p.round) r->reply(s, nullptr);
    for (auto& r : p.deferred) r->reply(s, nullptr);
    p.round.clear();
    p.deferred.clear();
    p.round_count = 0;
    p.merge = tensor{};
    std::fill(p.contributed.begin(), p.contributed.end(), 0);
    std::fill(p.deferred_by_worker.begin(), p.deferred_by_worker.end(), 0);
  }
}

}  // namespace kvactor::detail

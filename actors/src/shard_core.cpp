#include "shard_core.hpp"

#include <algorithm>
#include <limits>
#include <variant>

#include "kvactor/detail/device_ops.hpp"
#include "kvactor/detail/timeline.hpp"
#include "kvactor/optimizer_state.hpp"

namespace kvactor::detail {

namespace {

op_stage first_stage(op_kind k) {
  switch (k) {
    case op_kind::init:
    case op_kind::broadcast:
      return op_stage::init;
    case op_kind::push:
    case op_kind::pushpull:
      return op_stage::reduce;
    case op_kind::pull:
    case op_kind::row_pull:
      return op_stage::pull;
  }
  return op_stage::finish;
}

constexpr std::size_t min_chunk_bytes = 256 * 1024;
constexpr std::size_t help_limit_bytes = std::size_t{8} << 20;
// Steps below this many times the parallel threshold run on the thread that holds the gate
// (the shard's, or the caller's), without the reducer threads. Measured on the 2-core build
// machine (docs/PERFORMANCE.md, bench_local_reduce): a parked pool thread takes tens of us
// to wake, and up to ~16 MiB of traffic one thread was as fast as two or faster (the data
// is mostly in the caches at these sizes); from ~20 MiB on the pool was ahead.
constexpr std::size_t solo_factor = 16;

void record_chunk_error(op& o, const std::string& what) {
  if (!o.chunk_failed.exchange(true, std::memory_order_acq_rel)) o.chunk_error = what;
}

const char* stage_name(op_stage s) {
  switch (s) {
    case op_stage::init:
      return "init value";
    case op_stage::reduce:
      return "reduce";
    case op_stage::update:
      return "update";
    case op_stage::pull:
      return "copy out";  // not "pull": that is the op's own span
    case op_stage::finish:
      break;
  }
  return "finish";
}

// The timeline (only while it records): the stage o was in ends, `next` begins. A stage's
// span includes waiting for the pool or a stream, so it is a lifetime, not a thread's work.
void trace_stage(op& o, op_stage next) {
  if (!o.trace_arrived) return;  // arrived while the timeline was off
  const std::int64_t now = timeline::now_ns();
  if (o.trace_stage != op_stage::finish)
    timeline::async_span("shard", stage_name(o.trace_stage), o.trace_stage_began, now,
                         timeline::args{o.info->name()});
  o.trace_stage = next;
  o.trace_stage_began = now;
}

}  // namespace

shard_core::shard_core(hooks h, std::size_t threshold, std::size_t width)
    : sched_(op_scheduler::hooks{std::move(h.schedule_process), std::move(h.mailbox_empty)}),
      cx_(std::move(h), threshold, width) {}

shard_core::~shard_core() = default;

std::size_t shard_core::held_bytes() const noexcept {
  std::size_t n = 0;
  for (const auto& [id, e] : entries_)
    n += e.stored.nbytes() + e.merge.nbytes();
  return n;
}

shard_entry& shard_core::entry_for(const op& o) {
  auto [it, fresh] = entries_.try_emplace(o.info->id);
  if (fresh) {
    // The key's placement (the registry's) picks its executor once.
    it->second.info = o.info;
    it->second.exec = o.info->home.is_cpu() ? executor_kind::host : executor_kind::device;
  }
  return it->second;
}

void shard_core::receive(op_ptr o) {
  if (timeline::enabled()) o->trace_arrived = timeline::now_ns();
  o->stage = first_stage(o->kind);
  const int priority = o->priority;
  shard_entry& e = entry_for(*o);
  sched_.submit(e, std::move(o), priority, starter());
}

bool shard_core::may_run_here(const op& o) const noexcept {
  return !o.upd && !sched_.fence_waiting() && sched_.held() == 0;
}

bool shard_core::receive_here(op_ptr& o) {
  if (!may_run_here(*o)) return false;
  receive(std::move(o));
  return true;
}

bool shard_core::step_done_here(std::int64_t key_id, const op& o) {
  auto it = entries_.find(key_id);
  if (it == entries_.end() || it->second.current.get() != &o) return false;
  if (!may_run_here(o)) return false;
  step_done(key_id);
  return true;
}

void shard_core::take_finished(finished_calls& out) {
  for (auto& f : finished_)
    out.push_back(std::move(f));
  finished_.clear();
}

void shard_core::complete(finished_calls& calls) {
  for (auto& f : calls) {
    const std::int64_t t0 = f.traced ? timeline::now_ns() : 0;
    f.call->part_done(f.error);
    // The completion of the op's part of the call: the last part completes the user's
    // future, and runs what waits on it.
    if (f.traced)
      timeline::span("shard", "complete", t0, timeline::now_ns(), timeline::args{f.traced->name()});
  }
  calls.clear();
}

void shard_core::process() {
  sched_.run_ready(starter());
}

void shard_core::receive_fence(shard_fence f) {
  sched_.fence([this, f = std::move(f)] { run_fence(f); });
}

void shard_core::run_fence(const shard_fence& f) {
  struct runner {
    shard_core& core;
    void operator()(const save_states_fence& s) const {
      s.into->add(core.snapshot_states(s.owner));
    }
    void operator()(const load_states_fence& l) const {
      core.restore_states(*l.records, l.owner);
      l.call->part_done(status{});
    }
  };
  std::visit(runner{*this}, f);
}

void shard_core::start(shard_entry& e, op_ptr o) {
  if (timeline::enabled() && o->trace_arrived)
    timeline::async_span("shard", "queued", o->trace_arrived, timeline::now_ns(),
                         timeline::args{o->info->name()});
  e.current = std::move(o);
  advance(e, *e.current);
}

void shard_core::step_done(std::int64_t key_id) {
  auto it = entries_.find(key_id);
  if (it == entries_.end() || !it->second.current) return;
  shard_entry& e = it->second;
  op& o = *e.current;
  if (o.chunk_failed.load(std::memory_order_acquire) && o.error.is_ok())
    o.error = status{o.chunk_code, o.chunk_error};
  advance(e, o);
}

template <class Executor>
bool shard_core::run_stages(Executor& x, shard_entry& e, op& o) {
  if (!x.begin(e, o)) return false;
  for (;;) {
    if (!o.error.is_ok()) o.stage = op_stage::finish;
    // Init makes the key's value; every other stage needs it.
    const bool init = o.stage == op_stage::init;
    if (o.stage != op_stage::finish && init == e.stored.defined()) {
      o.error = status{init ? errc::already_initialized : errc::not_initialized,
                       std::string{to_string(o.kind)} + ": key " + o.info->name() +
                           (init ? " is already initialized" : " is not initialized")};
      continue;
    }
    // Each stage names the next before it runs (a stage may change it: a fused pushpull).
    if (timeline::enabled()) trace_stage(o, o.stage);
    switch (o.stage) {
      case op_stage::init:
        o.stage = o.kind == op_kind::broadcast ? op_stage::pull : op_stage::finish;
        if (!x.init(e, o)) return false;
        break;
      case op_stage::reduce:
        o.stage = o.upd ? op_stage::update
                        : (o.kind == op_kind::pushpull ? op_stage::pull : op_stage::finish);
        if (!x.reduce(e, o)) return false;
        break;
      case op_stage::update:
        o.stage = o.kind == op_kind::pushpull ? op_stage::pull : op_stage::finish;
        if (!x.update(e, o)) return false;
        break;
      case op_stage::pull:
        o.stage = op_stage::finish;
        if (!x.pull(e, o)) return false;
        break;
      case op_stage::finish:
        if (!x.end(e, o)) return false;
        finish(e, o);
        return true;
    }
  }
}

bool shard_core::advance(shard_entry& e, op& o) {
  // The executor is the key's, not the op's: a device key that moved to host memory (in
  // device_executor::begin) runs the rest of its ops on the host.
  if (e.exec == executor_kind::device) return run_stages(device_, e, o);
  return run_stages(host_, e, o);
}

void shard_core::finish(shard_entry& e, op& o) {
  op_ptr keep = std::move(e.current);
  o.merged = tensor{};
  o.release_leases();
  const bool traced = timeline::enabled() && o.trace_arrived;
  if (traced)  // the op from arrival to here
    timeline::async_span(
        "shard", to_string(o.kind), o.trace_arrived, timeline::now_ns(),
        timeline::args{o.info->name()}.with("bytes", static_cast<std::int64_t>(o.info->nbytes())));
  if (o.call)
    finished_.push_back(finished_call{std::move(o.call), o.error, traced ? o.info : nullptr});
  sched_.finished(e, starter());
}

std::vector<shard_core::state_record> shard_core::snapshot_states(
    const std::shared_ptr<const updater>& owner) const {
  std::vector<state_record> out;
  for (const auto& [id, e] : entries_) {
    if (!e.state || e.state_owner != owner) continue;
    const auto* st = dynamic_cast<const optimizer_state*>(e.state.get());
    if (!st) continue;
    state_record r;
    r.info = e.info;
    r.count = st->count;
    // Host copies (blocking for a device-resident key's state: fences are rare).
    for (const auto& t : st->slots)
      r.slots.push_back(t.copy_to(device::cpu()));
    if (st->master.defined()) r.master = st->master.copy_to(device::cpu());
    out.push_back(std::move(r));
  }
  return out;
}

void shard_core::restore_states(const std::vector<state_record>& records,
                                const std::shared_ptr<const updater>& owner) {
  for (const auto& r : records) {
    auto it = entries_.find(r.info->id);
    if (it == entries_.end()) continue;
    auto st = std::make_unique<optimizer_state>();
    st->count = r.count;
    const device home = it->second.stored.defined() ? it->second.stored.device() : device::cpu();
    for (const auto& t : r.slots)
      st->slots.push_back(t.copy_to(home));
    if (r.master.defined()) st->master = r.master.copy_to(home);
    it->second.state = std::move(st);
    it->second.state_owner = owner;
  }
}

// ---- shard_context ----

shard_context::shard_context(shard_hooks h, std::size_t threshold, std::size_t width)
    : hooks_(std::move(h)),
      threshold_(threshold),
      solo_(threshold > std::numeric_limits<std::size_t>::max() / solo_factor
                ? std::numeric_limits<std::size_t>::max()
                : threshold * solo_factor),
      width_(std::max<std::size_t>(width, 1)) {}

std::size_t shard_context::chunks_for(std::size_t bytes) const noexcept {
  return std::clamp<std::size_t>(bytes / min_chunk_bytes, 1, width_ * 4);
}

bool shard_context::parallel(op& o, std::size_t bytes, std::size_t n,
                             std::function<void(std::size_t)> chunk) {
  op* po = &o;
  // Steps up to this size are mostly done by the shard's own thread before a pool thread has
  // woken up; bigger ones leave the shard free for other keys.
  const bool help = bytes <= help_limit_bytes;
  if (bytes < solo_) {
    // The shard's thread alone: in one pass, with the data still in its caches, it is done
    // before a parked reducer thread would have woken (see solo_factor).
    for (std::size_t i = 0; i < n; ++i) {
      try {
        chunk(i);
      } catch (const std::exception& ex) {
        record_chunk_error(o, ex.what());
      } catch (...) {
        record_chunk_error(o, "non-standard exception");
      }
    }
    if (o.chunk_failed.load(std::memory_order_acquire) && o.error.is_ok())
      o.error = status{o.chunk_code, o.chunk_error};
    return true;
  }
  const bool done = hooks_.run_parallel(
      n,
      [po, chunk = std::move(chunk)](std::size_t i) {
        try {
          chunk(i);
        } catch (const std::exception& ex) {
          record_chunk_error(*po, ex.what());
        } catch (...) {
          record_chunk_error(*po, "non-standard exception");
        }
      },
      o.priority, o.info->id, help, po);
  if (done && o.chunk_failed.load(std::memory_order_acquire) && o.error.is_ok())
    o.error = status{o.chunk_code, o.chunk_error};
  return done;
}

void shard_context::when_streams_done(op& o, const std::vector<device_stream>& used,
                                      std::vector<tensor> keep) {
  // `keep` holds the tensors the copies read and write until the streams report back,
  // whatever happens to the op meanwhile.
  auto wake = hooks_.step_done_from;
  const std::int64_t key_id = o.info->id;
  op* po = &o;
  when_all_done(used, [keep = std::move(keep), wake, key_id, po](const status& st) mutable {
    keep.clear();
    wake(key_id, po, st);
  });
}

}  // namespace kvactor::detail

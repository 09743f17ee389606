#include "shard_commands.hpp"

#include "../multi_precision.hpp"

namespace kvactor::detail {

void profile_total::add(const server_profile& p) {
  std::lock_guard<std::mutex> g(mu_);
  for (int i = 0; i < 4; ++i) {
    sum_.count[i] += p.count[i];
    sum_.bytes_in[i] += p.bytes_in[i];
  }
  sum_.busy_ns += p.busy_ns;
}

server_profile profile_total::sum() const {
  std::lock_guard<std::mutex> g(mu_);
  return sum_;
}

void states_total::add(std::vector<wire::key_state_record> mine) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& r : mine)
    records_.push_back(std::move(r));
}

std::vector<wire::key_state_record> states_total::take() {
  std::lock_guard<std::mutex> g(mu_);
  return std::move(records_);
}

void states_check::add(const result<std::size_t>& r) {
  std::lock_guard<std::mutex> g(mu_);
  if (r)
    matched_ += *r;
  else if (error_.is_ok())
    error_ = r.error();
}

std::size_t states_check::matched() const {
  std::lock_guard<std::mutex> g(mu_);
  return matched_;
}

status states_check::error() const {
  std::lock_guard<std::mutex> g(mu_);
  return error_;
}

namespace {

struct applier {
  server_core& core;

  void operator()(const cmd::noop&) const {}
  void operator()(const cmd::set_updater& c) const { core.set_updater(c.upd); }
  void operator()(const cmd::set_sync& c) const { core.set_sync(c.sync); }
  void operator()(const cmd::set_multi_precision& c) const { core.set_multi_precision(c.on); }
  void operator()(const cmd::set_compression& c) const { core.set_compression(c.config); }
  void operator()(const cmd::profiler& c) const {
    if (c.state == cmd::profiler::change::run) {
      core.reset_profile();
      core.set_profiling(true);
    } else if (c.state == cmd::profiler::change::stop) {
      core.set_profiling(false);
    }
    c.total->add(core.profile());
  }
  void operator()(const cmd::snapshot_states& c) const { c.into->add(core.snapshot_states()); }
  void operator()(const cmd::check_states& c) const {
    const std::shared_ptr<const updater> upd =
        c.inner ? (c.mp ? with_multi_precision(c.inner) : c.inner) : core.effective_updater();
    if (!upd)
      return c.result->add(status{errc::invalid_argument,
                                  "load_optimizer_states: no optimizer is set on the server, "
                                  "and the file has none"});
    c.result->add(core.check_states(*c.records, upd));
  }
  void operator()(const cmd::restore_states& c) const {
    if (c.inner) {
      core.set_multi_precision(c.mp);
      core.set_updater(c.inner);
    }
    core.restore_states(*c.records);
  }
  void operator()(const cmd::worker_left& c) const { core.worker_left(c.worker); }
};

}  // namespace

void apply_command(server_core& core, const command_body& c) {
  std::visit(applier{core}, c);
}

}  // namespace kvactor::detail

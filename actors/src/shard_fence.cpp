#include "shard_fence.hpp"

#include "kvactor/serialization/optimizer_states.hpp"
#include "state_records.hpp"

namespace kvactor::detail {

namespace {

wire::key_state_record to_record(const shard_state_record& r) {
  wire::key_state_record k;
  k.key = wire::wire_key::from(r.info->user_key);
  k.count = r.count;
  for (const auto& t : r.slots)
    k.slots.push_back(to_slot(t));
  if (r.master.defined()) k.master = to_slot(r.master);
  return k;
}

}  // namespace

states_collector::states_collector(std::size_t shards, std::string file,
                                   std::optional<optimizer_config> dump,
                                   std::shared_ptr<call_state> call)
    : left_(shards), file_(std::move(file)), dump_(std::move(dump)), call_(std::move(call)) {}

void states_collector::add(std::vector<shard_state_record> mine) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& r : mine)
    records_.push_back(std::move(r));
  if (--left_ != 0) return;
  wire::states_file out;
  out.optimizer = dump_;
  for (const auto& r : records_)
    out.keys.push_back(to_record(r));
  call_->part_done(wire::write_states_file(file_, out));
}

}  // namespace kvactor::detail

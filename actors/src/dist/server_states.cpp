// Optimizer states of a server's key parts: snapshots for save_states, and checked restores
// for load_states (every record checked before any is installed).
// Thread-safety: as server_core (one shard's thread).
#include <string>

#include "../state_records.hpp"
#include "kvactor/optimizer_state.hpp"
#include "server_core.hpp"

namespace kvactor::detail {

std::vector<wire::key_state_record> server_core::snapshot_states() const {
  std::vector<wire::key_state_record> out;
  for (const auto& [id, p] : parts_) {
    if (!p.state || p.state_owner != effective_) continue;
    const auto* st = dynamic_cast<const optimizer_state*>(p.state.get());
    if (!st) continue;
    wire::key_state_record r;
    r.key = wire::wire_key::from(id.k);
    r.part = id.part;
    r.num_parts = p.num_parts;
    r.count = st->count;
    for (const auto& t : st->slots)
      r.slots.push_back(to_slot(t));
    if (st->master.defined()) r.master = to_slot(st->master);
    out.push_back(std::move(r));
  }
  return out;
}

result<std::size_t> server_core::check_states(const std::vector<wire::key_state_record>& recs,
                                              const std::shared_ptr<const updater>& upd) const {
  std::size_t mine = 0;
  for (const auto& rec : recs) {
    const part_id id{rec.key.to_key(), rec.part};
    auto it = parts_.find(id);
    if (it == parts_.end() || !it->second.stored.defined()) continue;
    ++mine;
    const tensor& stored = it->second.stored;
    const std::string where = part_name(id.k, id.part, rec.num_parts);
    std::unique_ptr<updater_state> probe;
    try {
      probe = upd->make_state(id.k, tensor::zeros({1}, stored.dtype()));
    } catch (const std::exception& e) {
      return status{errc::invalid_argument, where + ": " + e.what()};
    }
    const auto* ps = dynamic_cast<const optimizer_state*>(probe.get());
    if (!ps) return status{errc::unsupported, where + ": the optimizer keeps no saveable state"};
    if (rec.slots.size() != ps->slots.size() || rec.master.has_value() != ps->master.defined())
      return status{errc::invalid_argument,
                    where + ": the file has " + std::to_string(rec.slots.size()) +
                        " state tensors, the optimizer keeps " + std::to_string(ps->slots.size())};
    auto fits = [&](const wire::slot_record& s, dtype want) -> status {
      if (shape{s.dims} != stored.shape())
        return status{errc::shape_mismatch, where + ": state of shape " +
                                                shape{s.dims}.to_string() + ", the server holds " +
                                                stored.shape().to_string()};
      if (s.dtype != static_cast<std::uint8_t>(want))
        return status{errc::dtype_mismatch, where + ": state element type differs"};
      return {};
    };
    for (std::size_t i = 0; i < rec.slots.size(); ++i)
      if (auto s = fits(rec.slots[i], ps->slots[i].dtype()); !s) return s;
    if (rec.master)
      if (auto s = fits(*rec.master, dtype::float32); !s) return s;
  }
  return mine;
}

void server_core::restore_states(const std::vector<wire::key_state_record>& recs) {
  for (const auto& rec : recs) {
    auto it = parts_.find(part_id{rec.key.to_key(), rec.part});
    if (it == parts_.end() || !effective_) continue;
    auto st = std::make_unique<optimizer_state>();
    st->count = rec.count;
    for (const auto& s : rec.slots)
      st->slots.push_back(
          tensor::from_bytes(s.bytes.data(), shape{s.dims}, static_cast<dtype>(s.dtype)));
    if (rec.master)
      st->master =
          tensor::from_bytes(rec.master->bytes.data(), shape{rec.master->dims}, dtype::float32);
    it->second.state = std::move(st);
    it->second.state_owner = effective_;
  }
}

}  // namespace kvactor::detail

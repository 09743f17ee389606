// libFuzzer target: every cluster protocol meta (serialization/protocol.hpp). The first input
// byte picks the decoder (modulo the number of metas, in KVACTOR_WIRE_METAS's order: register,
// node_table, barrier, node_lost, node_done, data, command, reply, batch, batch reply), the rest
// is the meta. An accepted meta must satisfy what the decoder promises, survive encode/decode
// unchanged, and, when written in this host's byte order, re-encode to exactly the input.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <vector>

#include "fuzz_check.hpp"
#include "kvactor/serialization/protocol.hpp"

namespace {

using namespace kvactor::wire;

bool same(const wire_key& a, const wire_key& b) {
  return a.is_string == b.is_string && a.id == b.id && a.name == b.name;
}
bool same(const register_meta& a, const register_meta& b) {
  return a.role == b.role && a.host == b.host && a.port == b.port && a.rank_hint == b.rank_hint;
}
bool same(const node_table_meta& a, const node_table_meta& b) {
  if (a.rank != b.rank || a.num_workers != b.num_workers || a.num_servers != b.num_servers ||
      a.servers.size() != b.servers.size() || a.rank_key != b.rank_key)
    return false;
  for (std::size_t i = 0; i < a.servers.size(); ++i)
    if (a.servers[i].host != b.servers[i].host || a.servers[i].port != b.servers[i].port)
      return false;
  return true;
}
bool same(const barrier_meta& a, const barrier_meta& b) {
  return a.seq == b.seq;
}
bool same(const node_lost_meta& a, const node_lost_meta& b) {
  return a.role == b.role && a.rank == b.rank && a.reason == b.reason;
}
bool same(const node_done_meta& a, const node_done_meta& b) {
  return a.role == b.role && a.rank == b.rank;
}
bool same(const data_meta& a, const data_meta& b) {
  return same(a.key, b.key) && a.part == b.part && a.num_parts == b.num_parts &&
         a.numel == b.numel && a.dtype == b.dtype && a.row == b.row && a.rows == b.rows;
}
bool same(const command_meta& a, const command_meta& b) {
  return a.cmd == b.cmd && a.body == b.body;
}
bool same(const reply_meta& a, const reply_meta& b) {
  return a.code == b.code && a.message == b.message;
}
bool same(const batch_meta& a, const batch_meta& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    const auto &x = a.entries[i], &y = b.entries[i];
    if (x.type != y.type || x.flags != y.flags || x.id != y.id || x.priority != y.priority ||
        x.bytes != y.bytes || !same(x.data, y.data))
      return false;
  }
  return true;
}
bool same(const batch_reply_meta& a, const batch_reply_meta& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    const auto &x = a.entries[i], &y = b.entries[i];
    if (x.id != y.id || x.code != y.code || x.message != y.message || x.bytes != y.bytes)
      return false;
  }
  return true;
}

// What the decoders promise beyond "it parsed" (protocol.cpp's caps and checks).
void check(const register_meta& m) {
  KVACTOR_FUZZ_CHECK(m.role.size() <= 32 && m.host.size() <= 256, "string over its cap");
}
void check(const node_table_meta& m) {
  KVACTOR_FUZZ_CHECK(m.servers.size() <= 65536, "too many servers accepted");
  KVACTOR_FUZZ_CHECK(m.servers.size() == m.num_servers, "server list disagrees with num_servers");
  KVACTOR_FUZZ_CHECK(m.rank >= 0 && (m.rank < m.num_workers || m.rank < m.num_servers),
                     "rank outside the cluster accepted");
  for (const auto& e : m.servers)
    KVACTOR_FUZZ_CHECK(e.host.size() <= 256, "host over its cap");
  KVACTOR_FUZZ_CHECK(m.rank_key.size() <= max_rank_key_bytes, "rank key over its cap");
}
void check(const barrier_meta&) {}
void check(const node_lost_meta& m) {
  KVACTOR_FUZZ_CHECK(m.role.size() <= 32 && m.reason.size() <= 4096, "string over its cap");
}
void check(const node_done_meta& m) {
  KVACTOR_FUZZ_CHECK(m.role.size() <= 32, "role over cap");
}
void check(const data_meta& m) {
  KVACTOR_FUZZ_CHECK(m.key.name.size() <= 4096, "key name over its cap");
  KVACTOR_FUZZ_CHECK(m.num_parts > 0 && m.part < m.num_parts, "bad part accepted");
  KVACTOR_FUZZ_CHECK(m.row > 0 && m.numel % m.row == 0, "bad row size accepted");
  KVACTOR_FUZZ_CHECK(m.rows <= m.numel / m.row, "more row ids than rows accepted");
}
void check(const command_meta& m) {
  KVACTOR_FUZZ_CHECK(m.body.size() <= 64 * 1024, "command body over its cap");
}
void check(const reply_meta& m) {
  KVACTOR_FUZZ_CHECK(m.message.size() <= 4096, "reply message over its cap");
}
void check(const batch_meta& m) {
  KVACTOR_FUZZ_CHECK(m.entries.size() <= max_batch_entries, "too many batch entries accepted");
  for (const auto& e : m.entries) {
    KVACTOR_FUZZ_CHECK(batchable(e.type), "a batch entry that is no data request accepted");
    KVACTOR_FUZZ_CHECK(e.bytes <= max_entry_bytes, "batch entry over its cap");
    check(e.data);
  }
}
void check(const batch_reply_meta& m) {
  KVACTOR_FUZZ_CHECK(m.entries.size() <= max_batch_entries, "too many batch answers accepted");
  for (const auto& e : m.entries)
    KVACTOR_FUZZ_CHECK(e.message.size() <= 4096 && e.bytes <= max_entry_bytes,
                       "batch answer over its cap");
}

template <class T>
void run(const std::vector<std::uint8_t>& in) {
  auto first = decode<T>(in);
  if (!first) return;
  check(*first);
  const std::vector<std::uint8_t> bytes = encode(*first);
  if (kvactor::fuzz::little_endian_archive(in.data(), in.size()))
    KVACTOR_FUZZ_CHECK(bytes == in, "re-encoded meta differs from the input");
  auto second = decode<T>(bytes);
  KVACTOR_FUZZ_CHECK(second.has_value(), "re-encoded meta is rejected");
  KVACTOR_FUZZ_CHECK(same(*first, *second), "meta changed in a round trip");
  KVACTOR_FUZZ_CHECK(encode(*second) == bytes, "encoding is not stable");
}

// One runner per meta, in the table's order (KVACTOR_WIRE_METAS): a meta added to the table
// joins the fuzzing, and fails to compile here until it has its same() and check().
using runner = void (*)(const std::vector<std::uint8_t>&);
constexpr runner runners[] = {
#define KVACTOR_FUZZ_RUNNER(meta, name) &run<meta>,
    KVACTOR_WIRE_METAS(KVACTOR_FUZZ_RUNNER)
#undef KVACTOR_FUZZ_RUNNER
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::vector<std::uint8_t> meta(data + 1, data + size);
  runners[data[0] % std::size(runners)](meta);
  return 0;
}

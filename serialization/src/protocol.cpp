#include "kvactor/serialization/protocol.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <algorithm>
#include <sstream>

#include "kvactor/error.hpp"
#include "kvactor/serialization/bounded_archive.hpp"

namespace kvactor::wire {

namespace {

constexpr std::uint8_t meta_version = 1;
constexpr std::size_t max_string = max_string_bytes;
constexpr std::size_t max_servers = 65536;

using serialization::bounded_input;
using serialization::decode_failure;
using serialization::decode_whole;

class writer {
 public:
  writer() : ar_(out_) { ar_(meta_version); }
  template <class T>
  writer& put(const T& x) {
    ar_(x);
    return *this;
  }
  writer& put_string(const std::string& s) {
    ar_(static_cast<std::uint64_t>(s.size()));
    ar_(cereal::binary_data(s.data(), s.size()));
    return *this;
  }
  std::vector<std::uint8_t> bytes() const {
    const std::string s = out_.str();
    return {s.begin(), s.end()};
  }

 private:
  std::ostringstream out_;
  cereal::PortableBinaryOutputArchive ar_;
};

void put_key(writer& w, const wire_key& k) {
  w.put(static_cast<std::uint8_t>(k.is_string)).put(k.id).put_string(k.name);
}

void get_key(bounded_input& in, wire_key& k) {
  std::uint8_t s = 0;
  in.read(s);
  if (s > 1) throw decode_failure{"bad key kind"};
  k.is_string = s == 1;
  in.read(k.id);
  in.read_string(k.name, max_string, "key name");
}

template <class T, class F>
result<T> run_decode(const std::vector<std::uint8_t>& bytes, const char* what, F&& body) {
  return decode_whole<T>(what, bytes.data(), bytes.size(), [&](bounded_input& in, T& m) {
    std::uint8_t v = 0;
    in.read(v);
    if (v != meta_version)
      throw decode_failure{"metadata version " + std::to_string(v) + " is not supported"};
    body(in, m);
  });
}

}  // namespace

const char* to_string(command c) noexcept {
  switch (c) {
    case command::controller:
      return "controller";
    case command::set_multi_precision:
      return "set_multi_precision";
    case command::stop_server:
      return "stop_server";
    case command::sync_mode:
      return "sync_mode";
    case command::set_gradient_compression:
      return "set_gradient_compression";
    case command::set_profiler_params:
      return "set_profiler_params";
    case command::save_states:
      return "save_states";
    case command::load_states:
      return "load_states";
    case command::bind_rank:
      return "bind_rank";
    case command::worker_done:
      return "worker_done";
  }
  return "unknown_command";
}

wire_key wire_key::from(const key& k) {
  wire_key w;
  w.is_string = k.is_string();
  if (w.is_string)
    w.name = k.as_string();
  else
    w.id = k.as_int();
  return w;
}

key wire_key::to_key() const {
  return is_string ? key{name} : key{id};
}

std::vector<std::uint8_t> encode(const register_meta& m) {
  writer w;
  w.put_string(m.role).put_string(m.host).put(m.port).put(m.rank_hint);
  return w.bytes();
}
std::vector<std::uint8_t> encode(const node_table_meta& m) {
  writer w;
  w.put(m.rank)
      .put(m.num_workers)
      .put(m.num_servers)
      .put(static_cast<std::uint64_t>(m.servers.size()));
  for (const auto& e : m.servers)
    w.put_string(e.host).put(e.port);
  w.put_string(m.rank_key);
  return w.bytes();
}
std::vector<std::uint8_t> encode(const barrier_meta& m) {
  writer w;
  w.put(m.seq);
  return w.bytes();
}
std::vector<std::uint8_t> encode(const node_lost_meta& m) {
  writer w;
  w.put_string(m.role).put(m.rank).put_string(m.reason);
  return w.bytes();
}
std::vector<std::uint8_t> encode(const node_done_meta& m) {
  writer w;
  w.put_string(m.role).put(m.rank);
  return w.bytes();
}
std::vector<std::uint8_t> encode(const data_meta& m) {
  writer w;
  put_key(w, m.key);
  w.put(m.part).put(m.num_parts).put(m.numel).put(m.dtype).put(m.row).put(m.rows);
  return w.bytes();
}
std::vector<std::uint8_t> encode(const command_meta& m) {
  writer w;
  w.put(m.cmd).put_string(m.body);
  return w.bytes();
}
std::vector<std::uint8_t> encode(const reply_meta& m) {
  writer w;
  w.put(m.code).put_string(m.message);
  return w.bytes();
}

template <>
result<register_meta> decode(const std::vector<std::uint8_t>& b) {
  return run_decode<register_meta>(b, "register", [](bounded_input& in, register_meta& m) {
    in.read_string(m.role, 32, "role");
    in.read_string(m.host, 256, "host");
    in.read(m.port);
    in.read(m.rank_hint);
  });
}
template <>
result<node_table_meta> decode(const std::vector<std::uint8_t>& b) {
  return run_decode<node_table_meta>(b, "node table", [](bounded_input& in, node_table_meta& m) {
    in.read(m.rank);
    in.read(m.num_workers);
    in.read(m.num_servers);
    const auto n = in.read_length(max_servers, 9, "server count");
    m.servers.resize(static_cast<std::size_t>(n));
    for (auto& e : m.servers) {
      in.read_string(e.host, 256, "server host");
      in.read(e.port);
    }
    in.read_string(m.rank_key, max_rank_key_bytes, "rank key");
    // Nodes index the list by server rank up to num_servers, and use their rank as an index:
    // a table that disagrees with itself would send them out of bounds.
    if (m.servers.size() != m.num_servers)
      throw decode_failure{"lists " + std::to_string(m.servers.size()) + " servers but says " +
                           std::to_string(m.num_servers)};
    if (m.rank < 0 || m.rank >= std::max<std::int64_t>(m.num_workers, m.num_servers))
      throw decode_failure{"rank " + std::to_string(m.rank) + " outside the cluster"};
  });
}
template <>
result<barrier_meta> decode(const std::vector<std::uint8_t>& b) {
  return run_decode<barrier_meta>(b, "barrier",
                                  [](bounded_input& in, barrier_meta& m) { in.read(m.seq); });
}
template <>
result<node_lost_meta> decode(const std::vector<std::uint8_t>& b) {
  return run_decode<node_lost_meta>(b, "node lost", [](bounded_input& in, node_lost_meta& m) {
    in.read_string(m.role, 32, "role");
    in.read(m.rank);
    in.read_string(m.reason, max_string, "reason");
  });
}
template <>
result<node_done_meta> decode(const std::vector<std::uint8_t>& b) {
  return run_decode<node_done_meta>(b, "node done", [](bounded_input& in, node_done_meta& m) {
    in.read_string(m.role, 32, "role");
    in.read(m.rank);
  });
}
template <>
result<data_meta> decode(const std::vector<std::uint8_t>& b) {
  return run_decode<data_meta>(b, "data", [](bounded_input& in, data_meta& m) {
    get_key(in, m.key);
    in.read(m.part);
    in.read(m.num_parts);
    in.read(m.numel);
    in.read(m.dtype);
    in.read(m.row);
    in.read(m.rows);
    if (m.num_parts == 0 || m.part >= m.num_parts) throw decode_failure{"bad part index"};
    if (m.row == 0 || m.numel % m.row != 0) throw decode_failure{"bad row size"};
    if (m.rows > m.numel / m.row) throw decode_failure{"more row ids than rows"};
  });
}
template <>
result<command_meta> decode(const std::vector<std::uint8_t>& b) {
  return run_decode<command_meta>(b, "command", [](bounded_input& in, command_meta& m) {
    in.read(m.cmd);
    in.read_string(m.body, 64 * 1024, "command body");
  });
}
template <>
result<reply_meta> decode(const std::vector<std::uint8_t>& b) {
  return run_decode<reply_meta>(b, "reply", [](bounded_input& in, reply_meta& m) {
    in.read(m.code);
    in.read_string(m.message, max_string, "reply message");
  });
}

}  // namespace kvactor::wire

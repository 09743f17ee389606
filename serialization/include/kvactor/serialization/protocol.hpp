// The cluster protocol's message metadata: what workers, servers and the scheduler say to
// each other, above the transport's frames. Each struct encodes to a versioned cereal byte
// string; decoding is bounds-checked before any allocation and fails with protocol_error.
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvactor/key.hpp"
#include "kvactor/result.hpp"

namespace kvactor::wire {

/// Application message types (the transport reserves 0-15).
enum class msg : std::uint8_t {
  register_node = 16,  ///< node -> scheduler: who I am and where I listen
  node_table,          ///< scheduler -> node: ranks and server addresses
  barrier,             ///< worker <-> scheduler
  node_lost,           ///< scheduler -> nodes: a node died or froze
  node_done,           ///< node -> scheduler: finished in order
  init,                ///< worker -> server, payload = the part's values
  push,                ///< worker -> server, payload = the part's gradient
  pull,                ///< worker -> server; the reply carries the part's value
  pushpull,            ///< both in one
  command,             ///< worker -> server
  reply,               ///< any answer; same id and stream as the request
  push_rows,           ///< worker -> server, payload = int64 row ids, then those rows
  pull_rows,           ///< worker -> server, payload = int64 row ids; the reply carries the rows
};

/// Application flag on replies.
constexpr std::uint16_t flag_response = 0x0001;
/// Application flag on pushes whose payload is gradient-compressed words (the servers' last
/// set_gradient_compression says how to decode them).
constexpr std::uint16_t flag_compressed = 0x0002;

/// MXNet's server commands, numbered as MXNet numbers them.
enum class command : std::uint8_t {
  controller = 0,  ///< body: an encoded optimizer_config
  set_multi_precision = 1,
  stop_server = 2,
  sync_mode = 3,  ///< body: "1" for dist_sync, "0" for dist_async
  set_gradient_compression = 4,
  set_profiler_params = 5,
  // kvactor's own:
  save_states = 16,  ///< body: "0" or "1" (dump the optimizer) followed by the file path prefix
  load_states = 17,  ///< body: the file path prefix
  bind_rank = 18,    ///< body: the rank token the scheduler gave this worker (node_table_meta)
  worker_done = 19,  ///< body empty: this worker pushes no more (its store is shutting down)
};
const char* to_string(command c) noexcept;

/// The longest string a meta may carry for a key name or a message (decoders refuse more).
constexpr std::size_t max_string_bytes = 4096;

struct wire_key {
  bool is_string = false;
  std::int64_t id = 0;
  std::string name;

  static wire_key from(const key& k);
  key to_key() const;
};

struct register_meta {
  std::string role;  ///< "server" or "worker"
  std::string host;  ///< where a server accepts workers
  std::uint16_t port = 0;
  std::int64_t rank_hint = -1;  ///< from mpirun/Slurm, else -1
};

struct endpoint {
  std::string host;
  std::uint16_t port = 0;
};

struct node_table_meta {
  std::int64_t rank = 0;
  std::uint32_t num_workers = 0;
  std::uint32_t num_servers = 0;
  std::vector<endpoint> servers;  ///< by server rank
  /// Binds worker ranks to connections (at most max_rank_key_bytes): for a worker, the token
  /// that proves its rank to the servers; for a server, the key those tokens derive from.
  std::string rank_key;
};
constexpr std::size_t max_rank_key_bytes = 64;

struct barrier_meta {
  std::uint64_t seq = 0;
};

struct node_lost_meta {
  std::string role;
  std::int64_t rank = -1;
  std::string reason;
};

struct node_done_meta {
  std::string role;
  std::int64_t rank = -1;
};

/// One part of one key. A key is stored whole on one server, or split into parts across all
/// servers when it is big; each part is a flat array of `numel` elements.
struct data_meta {
  wire_key key;
  std::uint32_t part = 0;
  std::uint32_t num_parts = 1;
  std::uint64_t numel = 0;
  std::uint8_t dtype = 0;
  std::uint64_t row = 1;   ///< elements per row (the key's shape without its first dimension)
  std::uint64_t rows = 0;  ///< push_rows/pull_rows: how many row ids the payload starts with
};

struct command_meta {
  std::uint8_t cmd = 0;
  std::string body;
};

struct reply_meta {
  std::uint8_t code = 0;  ///< kvactor::errc
  std::string message;
};

std::vector<std::uint8_t> encode(const register_meta& m);
std::vector<std::uint8_t> encode(const node_table_meta& m);
std::vector<std::uint8_t> encode(const barrier_meta& m);
std::vector<std::uint8_t> encode(const node_lost_meta& m);
std::vector<std::uint8_t> encode(const node_done_meta& m);
std::vector<std::uint8_t> encode(const data_meta& m);
std::vector<std::uint8_t> encode(const command_meta& m);
std::vector<std::uint8_t> encode(const reply_meta& m);

/// Decoders; T is one of the structs above.
template <class T>
result<T> decode(const std::vector<std::uint8_t>& bytes);

}  // namespace kvactor::wire

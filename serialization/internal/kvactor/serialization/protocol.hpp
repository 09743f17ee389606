// The cluster protocol's message metadata: what workers, servers and the scheduler say to
// each other, above the transport's frames. Each message is one line of the message table
// below; each meta struct is described once, by its fields() schema next to it, which
// encodes it (a versioned cereal byte string), decodes it (bounds-checked before any
// allocation; every failure protocol_error) and prints it (to_string). Adding a message
// touches this file only (see CONTRIBUTING.md), apart from who sends and who handles it.
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "kvactor/key.hpp"
#include "kvactor/result.hpp"

namespace kvactor::wire {

/// The message table: every application message type (the transport reserves 0-15), its
/// number on the wire, and the meta struct its first frame carries. The enum msg,
/// to_string(msg), known_message, meta_of and for_each_message are made from it.
#define KVACTOR_WIRE_MESSAGES(X)                                                                   \
  X(register_node, 16, register_meta) /* node -> scheduler: who I am, where I listen */            \
  X(node_table, 17, node_table_meta)  /* scheduler -> node: ranks and server addresses */          \
  X(barrier, 18, barrier_meta)        /* worker <-> scheduler */                                   \
  X(node_lost, 19, node_lost_meta)    /* scheduler -> nodes: a node died or froze */               \
  X(node_done, 20, node_done_meta)    /* node -> scheduler: finished in order */                   \
  X(init, 21, data_meta)              /* worker -> server, payload = the part's values */          \
  X(push, 22, data_meta)              /* worker -> server, payload = the part's gradient */        \
  X(pull, 23, data_meta)              /* worker -> server; the reply carries the part's value */   \
  X(pushpull, 24, data_meta)          /* both in one */                                            \
  X(command, 25, command_meta)        /* worker -> server */                                       \
  X(reply, 26, reply_meta)            /* any answer; same id and stream as the request */          \
  X(push_rows, 27, data_meta)         /* worker -> server, payload = int64 row ids, then rows */   \
  X(pull_rows, 28, data_meta)         /* worker -> server, payload = int64 row ids; reply: rows */ \
  X(batch, 29, batch_meta)            /* worker -> server: small requests fused; their payloads */ \
  X(batch_reply, 30, batch_reply_meta) /* server -> worker: answers to a batch's requests */

/// Every meta struct once, with the name its decoding errors and its text start with.
#define KVACTOR_WIRE_METAS(X)      \
  X(register_meta, "register")     \
  X(node_table_meta, "node table") \
  X(barrier_meta, "barrier")       \
  X(node_lost_meta, "node lost")   \
  X(node_done_meta, "node done")   \
  X(data_meta, "data")             \
  X(command_meta, "command")       \
  X(reply_meta, "reply")           \
  X(batch_meta, "batch")           \
  X(batch_reply_meta, "batch reply")

enum class msg : std::uint8_t {
// NOLINTNEXTLINE(bugprone-macro-parentheses): an enumerator's name cannot be parenthesised
#define KVACTOR_WIRE_ENUM(name, number, meta) name = number,
  KVACTOR_WIRE_MESSAGES(KVACTOR_WIRE_ENUM)
#undef KVACTOR_WIRE_ENUM
};

/// The message's name ("push"), or "unknown" for a number the table does not have.
const char* to_string(msg m) noexcept;
/// Whether `type` is in the message table (a receiver refuses the others).
bool known_message(std::uint8_t type) noexcept;
/// A type number as errors and logs name it: "17 (node_table)", "99 (unknown)".
std::string type_text(std::uint8_t type);

/// Application flag on replies.
constexpr std::uint16_t flag_response = 0x0001;
/// Application flag on pushes whose payload is gradient-compressed words (the servers' last
/// set_gradient_compression says how to decode them).
constexpr std::uint16_t flag_compressed = 0x0002;

/// The server commands: MXNet's, numbered as MXNet numbers them (a user may send them with
/// send_command_to_servers), then kvactor's own from 16.
#define KVACTOR_WIRE_COMMANDS(X)                                                              \
  X(controller, 0, true) /* body: an encoded optimizer_config */                              \
  X(set_multi_precision, 1, true)                                                             \
  X(stop_server, 2, true)                                                                     \
  X(sync_mode, 3, true) /* body: "1" for dist_sync, "0" for dist_async */                     \
  X(set_gradient_compression, 4, true)                                                        \
  X(set_profiler_params, 5, true)                                                             \
  X(save_states, 16, false) /* body: "0" or "1" (dump the optimizer), then the path prefix */ \
  X(load_states, 17, false) /* body: the file path prefix */                                  \
  X(bind_rank, 18, false)   /* body: the rank token the scheduler gave this worker */         \
  X(worker_done, 19, false) /* body empty: this worker pushes no more */

enum class command : std::uint8_t {
// NOLINTNEXTLINE(bugprone-macro-parentheses): an enumerator's name cannot be parenthesised
#define KVACTOR_WIRE_ENUM(name, number, mxnet) name = number,
  KVACTOR_WIRE_COMMANDS(KVACTOR_WIRE_ENUM)
#undef KVACTOR_WIRE_ENUM
};
/// The command's name, or "unknown_command".
const char* to_string(command c) noexcept;
/// Whether `head` is one of MXNet's commands (what send_command_to_servers accepts).
bool mxnet_command(int head) noexcept;

/// The longest string a meta may carry for a key name or a message (decoders refuse more).
constexpr std::size_t max_string_bytes = 4096;
constexpr std::size_t max_role_bytes = 32;
constexpr std::size_t max_host_bytes = 256;
constexpr std::size_t max_servers = 65536;
constexpr std::size_t max_command_body_bytes = 64 * 1024;

struct wire_key {
  bool is_string = false;
  std::int64_t id = 0;
  std::string name;

  static wire_key from(const key& k);
  key to_key() const;
};
template <class Ar>
void fields(Ar& ar, wire_key& k) {
  ar.flag("key kind", k.is_string);
  ar("key id", k.id);
  ar.string("key name", k.name, max_string_bytes);
}

struct register_meta {
  std::string role;  ///< "server" or "worker"
  std::string host;  ///< where a server accepts workers
  std::uint16_t port = 0;
  std::int64_t rank_hint = -1;  ///< from mpirun/Slurm, else -1
};
template <class Ar>
void fields(Ar& ar, register_meta& m) {
  ar.string("role", m.role, max_role_bytes);
  ar.string("host", m.host, max_host_bytes);
  ar("port", m.port);
  ar("rank_hint", m.rank_hint);
}

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
template <class Ar>
void fields(Ar& ar, node_table_meta& m) {
  ar("rank", m.rank);
  ar("num_workers", m.num_workers);
  ar("num_servers", m.num_servers);
  ar.sequence("server count", m.servers, max_servers, 9, [&](endpoint& e) {
    ar.string("server host", e.host, max_host_bytes);
    ar("port", e.port);
  });
  ar.blob("rank key", m.rank_key, max_rank_key_bytes);  // a secret: never printed
  // Nodes index the list by server rank up to num_servers, and use their rank as an index:
  // a table that disagrees with itself would send them out of bounds.
  ar.check(m.servers.size() == m.num_servers, [&] {
    return "lists " + std::to_string(m.servers.size()) + " servers but says " +
           std::to_string(m.num_servers);
  });
  ar.check(m.rank >= 0 && (m.rank < m.num_workers || m.rank < m.num_servers),
           [&] { return "rank " + std::to_string(m.rank) + " outside the cluster"; });
}

struct barrier_meta {
  std::uint64_t seq = 0;
};
template <class Ar>
void fields(Ar& ar, barrier_meta& m) {
  ar("seq", m.seq);
}

struct node_lost_meta {
  std::string role;
  std::int64_t rank = -1;
  std::string reason;
};
template <class Ar>
void fields(Ar& ar, node_lost_meta& m) {
  ar.string("role", m.role, max_role_bytes);
  ar("rank", m.rank);
  ar.string("reason", m.reason, max_string_bytes);
}

struct node_done_meta {
  std::string role;
  std::int64_t rank = -1;
};
template <class Ar>
void fields(Ar& ar, node_done_meta& m) {
  ar.string("role", m.role, max_role_bytes);
  ar("rank", m.rank);
}

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
template <class Ar>
void fields(Ar& ar, data_meta& m) {
  fields(ar, m.key);
  ar("part", m.part);
  ar("num_parts", m.num_parts);
  ar("numel", m.numel);
  ar("dtype", m.dtype);
  ar("row", m.row);
  ar("rows", m.rows);
  ar.check(m.num_parts != 0 && m.part < m.num_parts, [] { return std::string{"bad part index"}; });
  ar.check(m.row != 0 && m.numel % m.row == 0, [] { return std::string{"bad row size"}; });
  ar.check(m.row == 0 || m.rows <= m.numel / m.row,
           [] { return std::string{"more row ids than rows"}; });
}

struct command_meta {
  std::uint8_t cmd = 0;
  std::string body;
};
template <class Ar>
void fields(Ar& ar, command_meta& m) {
  ar("cmd", m.cmd);
  // Bodies are tokens (bind_rank) or encoded configurations: their length is what a log needs.
  ar.blob("command body", m.body, max_command_body_bytes);
}

struct reply_meta {
  std::uint8_t code = 0;  ///< kvactor::errc
  std::string message;
};
template <class Ar>
void fields(Ar& ar, reply_meta& m) {
  ar("code", m.code);
  ar.string("reply message", m.message, max_string_bytes);
}

/// Fusion of small keys: several requests of one worker for one server in one message. Each
/// entry is the request it stands for (type, flags, id, priority, data meta), and its payload
/// is the next `bytes` of the batch's payload. The server answers each entry under its own id:
/// in a batch_reply for those answered while the batch is applied, alone (a reply) for those
/// that wait longer (a dist_sync push waits for the other workers).
constexpr std::size_t max_batch_entries = 8192;
constexpr std::uint64_t max_entry_bytes = std::uint64_t{1} << 40;

/// Whether a request of this type may travel in a batch (the data requests).
constexpr bool batchable(std::uint8_t type) noexcept {
  return type == static_cast<std::uint8_t>(msg::init) ||
         type == static_cast<std::uint8_t>(msg::push) ||
         type == static_cast<std::uint8_t>(msg::pull) ||
         type == static_cast<std::uint8_t>(msg::pushpull) ||
         type == static_cast<std::uint8_t>(msg::push_rows) ||
         type == static_cast<std::uint8_t>(msg::pull_rows);
}

struct batch_entry {
  std::uint8_t type = 0;
  std::uint16_t flags = 0;
  std::uint64_t id = 0;
  std::int32_t priority = 0;
  std::uint64_t bytes = 0;
  data_meta data;
};
struct batch_meta {
  std::vector<batch_entry> entries;
};
template <class Ar>
void fields(Ar& ar, batch_meta& m) {
  // An entry is at least its fixed fields and its data meta's (a key of no name).
  ar.sequence("entry count", m.entries, max_batch_entries, 73, [&](batch_entry& e) {
    ar("type", e.type);
    ar("flags", e.flags);
    ar("id", e.id);
    ar("priority", e.priority);
    ar("bytes", e.bytes);
    fields(ar, e.data);
    ar.check(batchable(e.type), [&] { return "a batch entry of type " + std::to_string(e.type); });
    ar.check(e.bytes <= max_entry_bytes, [] { return std::string{"batch entry too big"}; });
  });
}

struct batch_reply_entry {
  std::uint64_t id = 0;
  std::uint8_t code = 0;  ///< kvactor::errc
  std::string message;
  std::uint64_t bytes = 0;  ///< its value: the next bytes of the batch reply's payload
};
struct batch_reply_meta {
  std::vector<batch_reply_entry> entries;
};
template <class Ar>
void fields(Ar& ar, batch_reply_meta& m) {
  ar.sequence("entry count", m.entries, max_batch_entries, 25, [&](batch_reply_entry& e) {
    ar("id", e.id);
    ar("code", e.code);
    ar.string("reply message", e.message, max_string_bytes);
    ar("bytes", e.bytes);
    ar.check(e.bytes <= max_entry_bytes, [] { return std::string{"batch reply entry too big"}; });
  });
}

/// The payload bytes a batch's or a batch reply's entries name (theirs one after another); the
/// message's payload must have exactly these. Cannot overflow: at most max_batch_entries
/// entries of at most max_entry_bytes each.
template <class BatchMeta>
std::uint64_t entries_bytes(const BatchMeta& m) noexcept {
  std::uint64_t total = 0;
  for (const auto& e : m.entries)
    total += e.bytes;
  return total;
}

/// The meta struct a message type carries: meta_of<msg::push>::type is data_meta.
template <msg M>
struct meta_of;
#define KVACTOR_WIRE_META_OF(name, number, meta) \
  template <>                                    \
  struct meta_of<msg::name> {                    \
    using type = meta;                           \
  };
KVACTOR_WIRE_MESSAGES(KVACTOR_WIRE_META_OF)
#undef KVACTOR_WIRE_META_OF

/// Calls f(std::integral_constant<msg, M>{}) for every message M of the table, in order.
template <class F>
void for_each_message(F&& f) {
#define KVACTOR_WIRE_VISIT(name, number, meta) f(std::integral_constant<msg, msg::name>{});
  KVACTOR_WIRE_MESSAGES(KVACTOR_WIRE_VISIT)
#undef KVACTOR_WIRE_VISIT
}

/// Encoders and decoders, for T one of the meta structs above.
template <class T>
std::vector<std::uint8_t> encode(const T& m);
/// encode into `out`, whose capacity is reused.
template <class T>
void encode_into(const T& m, std::vector<std::uint8_t>& out);
template <class T>
result<T> decode(const std::vector<std::uint8_t>& bytes);

/// One line for logs and errors: "data{key_kind=false key_id=3 ... rows=0}", strings cut.
#define KVACTOR_WIRE_TO_STRING(meta, name) std::string to_string(const meta& m);
KVACTOR_WIRE_METAS(KVACTOR_WIRE_TO_STRING)
#undef KVACTOR_WIRE_TO_STRING

/// "push data{...}" for a received message, "push (<decoding error>)" when its meta does not
/// decode, "unknown message type 99" when the table does not know it.
std::string describe(std::uint8_t type, const std::vector<std::uint8_t>& meta);

}  // namespace kvactor::wire

// What a server's transport threads send to its actors (server.cpp spawns them; the
// dispatcher, server_dispatch.hpp, sends): requests to the shard that owns their key part,
// commands (as data) to every shard with the count whose last holder answers the worker, and
// the stop the control actor acts on. Only .cpp files of actors/src/dist include this.
// Thread-safety: command_ack's count is a completion (shards run on any thread); the rest
// are values, handed over by message.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <functional>
#include <memory>
#include <vector>

#include "../completion.hpp"
#include "reply_batch.hpp"
#include "server_core.hpp"
#include "shard_commands.hpp"

namespace kvactor::detail {

/// Counts shards that applied a command; the last one runs the dispatcher's follow-up
/// (answering the worker: a reply path, as server_request::reply, not part of the command).
struct command_ack {
  explicit command_ack(std::size_t shards, std::function<void()> then)
      : left(shards), done(std::move(then)) {}
  void shard_done() {
    if (left.done_one(status{})) done();
  }
  completion left;
  std::function<void()> done;
};

/// A command for one shard (shard_commands.hpp: every kind, and apply_command), and the
/// count it answers.
struct shard_command {
  command_body what;
  std::shared_ptr<command_ack> ack;
};

/// A shard's requests of one fused batch, in the batch's order, and the batch that gathers
/// their answers (its shard_done once they are handled).
struct shard_batch {
  std::vector<server_request_ptr> requests;
  std::shared_ptr<reply_batch> replies;
};

/// To the control actor: a worker sent stop_server; finish once the scheduler knows.
using stop_atom = caf::atom_constant<caf::atom("kv_stop")>;

}  // namespace kvactor::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::server_request_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::shard_command)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::shard_batch)

// Requests for server_core tests without sockets: each reply is recorded as
// "w<rank>:<kind>:<status>[=first value]" with its message. Single-threaded, as server_core is.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dist/server_core.hpp"
#include "kvactor/kvstore.hpp"

namespace kvactor::detail::testing {

struct reply_log {
  std::vector<std::string> events;    // "w<rank>:<kind>:<status>[=value]"
  std::vector<std::string> messages;  // the statuses' messages, alike
};

/// The four-element value most tests push: {x, x, x, x}.
inline std::vector<float> fill4(float x) {
  return {x, x, x, x};
}

inline server_request_ptr request(reply_log& log, wire::msg kind, std::int64_t worker, key k,
                                  std::vector<float> data, std::uint32_t numel = 4) {
  auto r = std::make_shared<server_request>();
  r->kind = kind;
  r->meta.key = wire::wire_key::from(k);
  r->meta.numel = numel;
  r->meta.dtype = static_cast<std::uint8_t>(dtype::float32);
  r->worker = worker;
  if (!data.empty()) r->payload = tensor::from(data, shape{static_cast<std::int64_t>(data.size())});
  const std::string tag = "w" + std::to_string(worker) + ":" + wire::to_string(kind);
  r->reply = [&log, tag](const status& s, const tensor* v) {
    std::string e = tag + ":" + (s.is_ok() ? "ok" : to_string(s.code()));
    if (v) e += "=" + std::to_string(static_cast<int>(v->at(0)));
    log.events.push_back(e);
    log.messages.push_back(s.message());
  };
  return r;
}

}  // namespace kvactor::detail::testing

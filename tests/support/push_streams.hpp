// Pushes streamed into a server_core's rounds for unit tests without sockets: a push's bytes fed
// to the push_sink the core opened for it as the transport would, pushes received whole, pulls
// answered at once, exact sums checked. Single-threaded, as server_core is.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dist/push_intake.hpp"
#include "server_requests.hpp"

namespace kvactor::detail::testing {

/// How many elements the tests' pushes have, unless they say.
inline constexpr std::size_t elements = 3000;

/// {v, v, ...} of `m` elements.
inline tensor full(double v, dtype t = dtype::float32, std::size_t m = elements) {
  return tensor::full(shape{static_cast<std::int64_t>(m)}, v, t);
}

/// One push of `values` as its bytes would arrive, through the sink the server opened for it.
struct streamed {
  server_request_ptr r;
  std::shared_ptr<push_sink> sink;
  std::vector<std::uint8_t> bytes;
  std::size_t sent = 0;

  /// Offers the next k bytes: true when the sink took them.
  bool send(std::size_t k) {
    k = std::min(k, bytes.size() - sent);
    if (!sink->consume(sent, bytes.data() + sent, k)) return false;
    sent += k;
    return true;
  }
  void send_rest() {
    while (sent < bytes.size())
      send(1 << 20);
  }
  bool done() const { return sent == bytes.size(); }
};

/// Opens a stream for worker w's push of `value` to key 1 (null sink: the core said no).
inline streamed open_push(server_core& core, reply_log& log, std::int64_t w, const tensor& value,
                          wire::msg kind = wire::msg::push) {
  streamed s;
  s.r = request(log, kind, w, 1, {}, static_cast<std::uint32_t>(value.size()));
  s.r->meta.dtype = static_cast<std::uint8_t>(value.dtype());
  s.bytes.resize(value.nbytes());
  std::memcpy(s.bytes.data(), value.data_unchecked(), value.nbytes());
  if (core.open_intake(s.r) == server_core::intake_answer::opened)
    s.sink = std::make_shared<push_sink>(
        s.r, [&core](server_request_ptr d) { core.handle(std::move(d)); });
  return s;
}

/// Streams worker w's push of `value` to key 1 whole through the sink the core opens for it;
/// a failure when the core opened none.
inline ::testing::AssertionResult stream_push(server_core& core, reply_log& log, std::int64_t w,
                                              const tensor& value) {
  streamed s = open_push(core, log, w, value);
  if (!s.sink) return ::testing::AssertionFailure() << "worker " << w << "'s push got no sink";
  s.send_rest();
  s.sink->finish();
  return ::testing::AssertionSuccess();
}

/// Worker w's request of `kind` with `value` received whole.
inline server_request_ptr whole(reply_log& log, wire::msg kind, std::int64_t w,
                                const tensor& value) {
  auto r = request(log, kind, w, 1, {}, static_cast<std::uint32_t>(value.size()));
  r->meta.dtype = static_cast<std::uint8_t>(value.dtype());
  r->payload = value.copy();
  return r;
}

/// The whole value a pull by worker w gets (undefined if it was not answered at once).
inline tensor pull_now(server_core& core, reply_log& log, std::int64_t w, std::size_t m,
                       dtype t = dtype::float32) {
  tensor got;
  auto r = request(log, wire::msg::pull, w, 1, {}, static_cast<std::uint32_t>(m));
  r->meta.dtype = static_cast<std::uint8_t>(t);
  r->reply = [&got](const status& s, const tensor* v) {
    if (s.is_ok() && v) got = v->copy();
  };
  core.handle(r);
  return got;
}

/// Element i: scale * (i % 100) + offset.
inline tensor ramp(std::size_t m, double scale, double offset, dtype t = dtype::float32) {
  tensor x = tensor::zeros(shape{static_cast<std::int64_t>(m)}, t);
  for (std::size_t i = 0; i < m; ++i)
    x.set(i, scale * static_cast<double>(i % 100) + offset);
  return x;
}

/// Every element of `got` is the sum of the parts' (exactly).
inline void expect_sum(const tensor& got, const std::vector<tensor>& parts,
                       const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": no value";
  for (std::size_t i = 0; i < got.size(); ++i) {
    double want = 0;
    for (const auto& p : parts)
      want += p.at(i);
    ASSERT_EQ(got.at(i), want) << what << " at " << i;
  }
}

}  // namespace kvactor::detail::testing

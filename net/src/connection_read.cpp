// The read loop: frame headers, metas and payload slices assembled into messages, which go to
// on_message; whole transport frames go to on_transport_frame() (connection_handshake.cpp).
// Everything here runs on the connection's strand.
//
// Reassembly rule: a FIRST frame that is not also LAST opens a partial message keyed by
// (type, id); at most one partial message per key may be open, so a second FIRST frame
// with an open key is a protocol error. A continuation frame (not FIRST) must name an open
// key and agree with its FIRST frame on stream, priority, application flags and total size,
// and its offset must equal the payload bytes received so far (slices arrive in order). A
// FIRST|LAST frame is a whole message by itself and never touches the partial table, even
// when a partial message with its key is open.
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/read.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <utility>

#include "connection.hpp"

namespace kvactor::net::detail {

namespace asio = boost::asio;
namespace fr = serialization;
using boost::system::error_code;

namespace {

// Below this much free space at the end, the read buffer's remainder moves to the front.
constexpr std::size_t min_read_space = 4096;

// A payload read waits for this much of its slice to arrive (wire::wake_after), from slices of
// wake_batch_min up; smaller ones are read as they come.
constexpr std::size_t wake_batch_min = 64 << 10;
constexpr std::size_t wake_batch_max = 1 << 20;

const char* type_name(std::uint8_t t) {
  switch (t) {
    case fr::frame_type::challenge:
      return "CHALLENGE";
    case fr::frame_type::hello:
      return "HELLO";
    case fr::frame_type::welcome:
      return "WELCOME";
    case fr::frame_type::heartbeat:
      return "HEARTBEAT";
    case fr::frame_type::goodbye:
      return "GOODBYE";
    case fr::frame_type::tls:
      return "TLS";
    case fr::frame_type::shm_offer:
      return "SHM_OFFER";
    case fr::frame_type::shm_answer:
      return "SHM_ANSWER";
    case fr::frame_type::shm_release:
      return "SHM_RELEASE";
    default:
      return "unknown transport";
  }
}

std::string describe(const fr::frame_header& h) {
  return "type " + std::to_string(h.type) + " id " + std::to_string(h.id);
}

}  // namespace

void conn_impl::read_more() {
  if (ended() || close_requested_.load()) return;
  if (rpos_ == rend_) {
    rpos_ = rend_ = 0;
  } else if (rbuf_.size() - rend_ < min_read_space) {
    std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rend_ - rpos_);
    rend_ -= rpos_;
    rpos_ = 0;
  }
  // While a payload slice is due, the kernel writes it straight into the message's memory;
  // whatever follows it (the next header) lands in the read buffer in the same call.
  const bool payload = rs_ == read_state::payload;
  // The rest of a big slice is certain to come: the kernel wakes this read once it is all in
  // (up to wake_batch_max) instead of for every few segments. On loopback that took a 16 MiB
  // push from ~170 context switches to ~22 and its CPU from 1.6-1.8x raw TCP's to 1.2x.
  wire_.wake_after(payload && dst_left_ >= wake_batch_min ? std::min(dst_left_, wake_batch_max)
                                                          : 1);
  const std::array<asio::mutable_buffer, 2> bufs{
      asio::mutable_buffer(payload ? dst_ : nullptr, payload ? dst_left_ : 0),
      asio::mutable_buffer(rbuf_.data() + rend_, rbuf_.size() - rend_)};
  wire_.async_read_some(
      bufs, asio::bind_executor(strand_,
                                [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                  self->on_read(ec, n);
                                }));
}

void conn_impl::on_read(const error_code& ec, std::size_t n) {
  if (ended()) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    if (wire::is_tls_failure(ec) && !wire::is_eof(ec)) {
      // In TLS 1.3 a connector's handshake ends before the acceptor has checked its
      // certificate, so a refused certificate arrives here, as an alert, before open.
      if (phase_.load() != phase::open && wire_.certificates()) {
        fail(errc::unauthenticated,
             "TLS handshake failed: the peer refused this end: " + ec.message() +
                 " (is this end's certificate signed by "
                 "the CA the peer trusts?)");
        return;
      }
      // A record that fails its authentication tag was altered (or made up) on the way.
      fail(errc::unauthenticated, "TLS refused what arrived: " + ec.message() +
                                      " (altered or injected in flight?); nothing of it was used");
      return;
    }
    std::string what = wire::is_eof(ec)                      ? "connection closed by the peer"
                       : ec == asio::error::connection_reset ? "connection reset by the peer"
                                                             : ec.message();
    if (in_frame_ || rs_ != read_state::header || rpos_ != rend_)
      what += " in the middle of a frame";
    do_close(status{errc::peer_lost, std::move(what)}, true, false);
    return;
  }
  last_recv_ = clock::now();
  unread_seen_ = 0;
  if (rs_ == read_state::payload) {
    const std::size_t take = std::min(n, dst_left_);
    dst_ += take;
    dst_left_ -= take;
    n -= take;
    in_frame_ = true;
  }
  rend_ += n;
  read_on();
}

void conn_impl::read_on() {
  if (!process() && !sink_held_) return;
  flush_shm_releases();
  if (kick_after_read_) {
    kick_after_read_ = false;
    kick();
    if (ended()) return;
  }
  if (!sink_held_) read_more();
}

bool conn_impl::process() {
  for (;;) {
    if (ended() || close_requested_.load()) return false;
    const std::size_t avail = rend_ - rpos_;
    switch (rs_) {
      case read_state::header: {
        if (avail < fr::frame_header_size) {
          if (avail && !in_frame_) {
            in_frame_ = true;
            frame_start_ = last_recv_;
          }
          return true;
        }
        if (!in_frame_) {
          in_frame_ = true;
          frame_start_ = last_recv_;
        }
        auto h = fr::decode_frame_header(rbuf_.data() + rpos_, avail, fcaps_);
        if (!h) {
          fail(errc::protocol_error, h.error().message());
          return false;
        }
        rpos_ += fr::frame_header_size;
        hdr_ = *h;
        if (!on_header()) return false;
        break;
      }
      case read_state::meta: {
        const std::size_t take = std::min(avail, meta_left_);
        meta_.insert(meta_.end(), rbuf_.data() + rpos_, rbuf_.data() + rpos_ + take);
        rpos_ += take;
        meta_left_ -= take;
        if (meta_left_) return true;
        if (!on_meta_done()) return false;
        break;
      }
      case read_state::payload: {
        const std::size_t take = std::min(avail, dst_left_);
        if (take) std::memcpy(dst_, rbuf_.data() + rpos_, take);
        rpos_ += take;
        dst_ += take;
        dst_left_ -= take;
        if (dst_left_) return true;
        if (!on_frame_done()) return false;
        break;
      }
    }
  }
}

bool conn_impl::start_meta() {
  meta_.clear();
  meta_.reserve(hdr_.meta_size);
  meta_left_ = hdr_.meta_size;
  if (meta_left_ == 0) return on_meta_done();
  rs_ = read_state::meta;
  return true;
}

bool conn_impl::on_header() {
  const auto& h = hdr_;
  if (h.type < fr::frame_type::first_application) {
    if (!(h.is_first() && h.is_last()) || h.total_size != 0) {
      fail(errc::protocol_error,
           std::string{type_name(h.type)} + " frame with a payload or in several frames");
      return false;
    }
    if (h.meta_size > handshake::max_meta_size) {
      fail(errc::protocol_error, std::string{type_name(h.type)} + " frame with " +
                                     std::to_string(h.meta_size) + " meta bytes (at most " +
                                     std::to_string(handshake::max_meta_size) + ")");
      return false;
    }
    std::uint8_t expected = 0;
    if (phase_.load() == phase::handshake)
      expected = side_ == side::acceptor
                     ? fr::frame_type::hello
                     : (handshake_step_ == 0 ? fr::frame_type::challenge : fr::frame_type::welcome);
    else if (h.type == fr::frame_type::shm_offer || h.type == fr::frame_type::shm_answer ||
             h.type == fr::frame_type::shm_release)
      expected = h.type;
    else
      expected = fr::frame_type::heartbeat;
    if (h.type == fr::frame_type::tls && phase_.load() == phase::handshake) {
      fail(errc::protocol_error,
           "the peer requires TLS and this end does not use it: set KVACTOR_TLS the same on "
           "every node (identity::tls)");
      return false;
    }
    if (h.type != expected && h.type != fr::frame_type::goodbye) {
      fail(errc::protocol_error, std::string{"unexpected "} + type_name(h.type) + " frame (type " +
                                     std::to_string(h.type) + ") " +
                                     (phase_.load() == phase::handshake ? "during" : "after") +
                                     " the handshake");
      return false;
    }
    return start_meta();
  }
  if (phase_.load() != phase::open) {
    fail(errc::unauthenticated, "application frame (" + describe(h) + ") before authentication");
    return false;
  }
  if (h.is_first()) return start_meta();

  const auto it = partials_.find({h.type, h.id});
  if (it == partials_.end()) {
    fail(errc::protocol_error,
         "continuation frame for " + describe(h) + ", which has no partial message");
    return false;
  }
  inbound& in = it->second;
  const auto& m = in.msg;
  if (h.stream != m.stream || h.priority != m.priority || h.application_flags() != m.flags ||
      h.total_size != m.payload_size) {
    fail(errc::protocol_error, "continuation frame for " + describe(h) +
                                   " disagrees with its FIRST frame on stream, priority, "
                                   "flags or total size");
    return false;
  }
  if (h.offset != in.received) {
    fail(errc::protocol_error, "continuation frame for " + describe(h) + " at offset " +
                                   std::to_string(h.offset) + ", expected " +
                                   std::to_string(in.received));
    return false;
  }
  return start_slice(in);
}

bool conn_impl::on_meta_done() {
  const auto& h = hdr_;
  if (h.type < fr::frame_type::first_application) {
    rs_ = read_state::header;
    in_frame_ = false;
    return on_transport_frame();
  }
  auto self = shared_from_this();
  if (h.total_size == 0) {
    message m;
    m.type = h.type;
    m.flags = h.application_flags();
    m.id = h.id;
    m.stream = h.stream;
    m.priority = h.priority;
    m.meta = std::move(meta_);
    rs_ = read_state::header;
    in_frame_ = false;
    if (!h_.on_message) return true;
    const bool ok = guarded("on_message", [&] { h_.on_message(self, std::move(m)); });
    keep_meta_room(m);
    return ok;
  }
  const bool single = h.is_last();
  const std::pair<std::uint8_t, std::uint64_t> key{h.type, h.id};
  if (!single) {
    if (partials_.size() >= caps_.max_partial_messages) {
      fail(errc::protocol_error, "more than " + std::to_string(caps_.max_partial_messages) +
                                     " partial messages (at " + describe(h) + ")");
      return false;
    }
    if (partials_.count(key)) {
      fail(errc::protocol_error,
           "FIRST frame for " + describe(h) + " while that message is still partial");
      return false;
    }
    if (buffered_ + h.total_size > caps_.max_buffered_bytes) {
      fail(errc::protocol_error,
           "partial messages would hold " + std::to_string(buffered_ + h.total_size) +
               " payload bytes, over the cap of " + std::to_string(caps_.max_buffered_bytes));
      return false;
    }
  }
  const message_head head{h.type, h.application_flags(), h.id,      h.stream,
                          &meta_, h.total_size,          h.priority};
  payload_sink_ptr sink;
  if (h_.payload_sink_for &&
      !guarded("payload_sink_for", [&] { sink = h_.payload_sink_for(self, head); }))
    return false;
  void* dst = nullptr;
  if (!sink && h_.payload_destination &&
      !guarded("payload_destination", [&] { dst = h_.payload_destination(self, head); }))
    return false;
  std::shared_ptr<buffer> buf;
  if (!sink && !dst) {
    try {
      buf = rt_->pool->acquire(static_cast<std::size_t>(h.total_size));
    } catch (const std::bad_alloc&) {
      fail(errc::internal, "no memory for a payload of " + std::to_string(h.total_size) + " bytes");
      return false;
    }
    dst = buf->data();
  }
  inbound& in = single ? single_ : partials_[key];
  in = inbound{};
  in.single = single;
  in.msg.type = h.type;
  in.msg.flags = h.application_flags();
  in.msg.id = h.id;
  in.msg.stream = h.stream;
  in.msg.priority = h.priority;
  in.msg.meta = std::move(meta_);
  in.msg.payload_buffer = std::move(buf);
  in.msg.payload_data = dst;
  in.msg.payload_size = h.total_size;
  in.msg.sink = std::move(sink);
  if (!single) {
    buffered_ += h.total_size;
    in.started = last_recv_;
  }
  return start_slice(in);
}

bool conn_impl::start_slice(inbound& in) {
  cur_ = &in;
  dst_left_ = hdr_.slice_size;
  rs_ = read_state::payload;
  if (hdr_.shm_slot) {
    dst_ = in.msg.sink ? nullptr : static_cast<std::uint8_t*>(in.msg.payload_data) + hdr_.offset;
    return take_shm_slice();
  }
  if (!in.msg.sink) {
    dst_ = static_cast<std::uint8_t*>(in.msg.payload_data) + hdr_.offset;
    return true;
  }
  if (!sink_buf_) {
    try {
      sink_buf_.reset(new std::uint8_t[caps_.max_slice_bytes]);
    } catch (const std::bad_alloc&) {
      fail(errc::internal, "no memory for a slice buffer");
      return false;
    }
  }
  dst_ = sink_buf_.get();
  return true;
}

conn_impl::sink_answer conn_impl::sink_slice(const void* data) {
  const auto& sink = cur_->msg.sink;
  const std::uint64_t at = cur_->received;
  bool took = false;
  if (!guarded("a payload sink", [&] { took = sink->consume(at, data, hdr_.slice_size); }))
    return sink_answer::failed;
  return took ? sink_answer::taken : sink_answer::declined;
}

// The slice stays where it is (the slice buffer, or the peer's slot, not given back), and so
// does everything read after it; nothing more is read until the sink takes it.
bool conn_impl::hold_for_sink() {
  sink_held_ = true;
  sink_timer_.expires_after(caps_.sink_retry);
  sink_timer_.async_wait(
      boost::asio::bind_executor(strand_, [self = shared_from_this()](const error_code& ec) {
        if (!ec) self->retry_sink();
      }));
  return false;
}

void conn_impl::retry_sink() {
  if (!sink_held_ || ended()) return;
  sink_held_ = false;
  bool go = false;
  if (hdr_.shm_slot) {
    go = take_shm_slice();
  } else {
    const auto got = sink_slice(sink_buf_.get());
    if (got == sink_answer::failed) return;
    go = got == sink_answer::taken ? slice_done() : hold_for_sink();
  }
  if (go) read_on();  // else closed, or held again
}

bool conn_impl::on_frame_done() {
  rs_ = read_state::header;
  in_frame_ = false;
  // A slice from shared memory went to its sink as it was taken (take_shm_slice).
  if (cur_->msg.sink && !hdr_.shm_slot) {
    const auto got = sink_slice(sink_buf_.get());
    if (got == sink_answer::failed) return false;
    if (got == sink_answer::declined) return hold_for_sink();
  }
  return slice_done();
}

bool conn_impl::slice_done() {
  cur_->received += hdr_.slice_size;
  if (!hdr_.is_last()) return true;
  message m = std::move(cur_->msg);
  if (cur_->single) {
    single_ = inbound{};
  } else {
    buffered_ -= m.payload_size;
    partials_.erase({hdr_.type, hdr_.id});
  }
  cur_ = nullptr;
  // The sender may reuse its slots before this end's handler has finished with the message.
  flush_shm_releases();
  if (ended()) return false;
  if (!h_.on_message) return true;
  auto self = shared_from_this();
  const bool ok = guarded("on_message", [&] { h_.on_message(self, std::move(m)); });
  keep_meta_room(m);
  return ok;
}

// The next message's metadata is read into the vector of the one just handled, unless the
// handler took it (a vector per message received was an allocation per message). Between
// messages meta_ holds nothing: a message's metadata moves out of it when its first frame
// ends.
void conn_impl::keep_meta_room(message& handled) {
  if (meta_.capacity() == 0 && handled.meta.capacity() != 0) meta_ = std::move(handled.meta);
}

void conn_impl::abort_sinks(const status& why) {
  std::vector<payload_sink_ptr> cut;
  for (auto& [key, in] : partials_)
    if (in.msg.sink) cut.push_back(std::move(in.msg.sink));
  if (single_.msg.sink) cut.push_back(std::move(single_.msg.sink));
  partials_.clear();
  single_ = inbound{};
  cur_ = nullptr;
  const status cause = why.is_ok() ? status{errc::shut_down,
                                            "the connection closed in order before the payload's "
                                            "last byte"}
                                   : why;
  for (auto& s : cut)
    s->abort(cause);
}

const conn_impl::inbound* conn_impl::oldest_partial() const {
  const inbound* oldest = nullptr;
  for (const auto& [key, in] : partials_)
    if (!oldest || in.started < oldest->started) oldest = &in;
  return oldest;
}

}  // namespace kvactor::net::detail

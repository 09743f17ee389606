// The 56-byte frame header: exact byte layout, round trips, and every rejection.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "kvactor/serialization/frame.hpp"

namespace kvactor::serialization {
namespace {

frame_header sample() {
  frame_header h;
  h.type = 17;
  h.flags = frame_flags::first | 0x1234;
  h.id = 0x0102030405060708ull;
  h.stream = 0x1112131415161718ull;
  h.priority = -5;
  h.meta_size = 100;
  h.total_size = 5000;
  h.offset = 0;
  h.slice_size = 4096;
  return h;
}

frame_caps roomy() {
  return frame_caps{1 << 16, std::uint64_t{1} << 40, 1 << 20};
}

::testing::AssertionResult rejected(const frame_bytes& b, const std::string& reason,
                                    const frame_caps& caps = roomy()) {
  auto r = decode_frame_header(b.data(), b.size(), caps);
  if (r) return ::testing::AssertionFailure() << "decoded successfully";
  if (r.error().code() != errc::protocol_error)
    return ::testing::AssertionFailure() << "wrong code: " << r.error().to_string();
  if (r.error().message().find(reason) == std::string::npos)
    return ::testing::AssertionFailure()
           << "reason '" << r.error().message() << "' does not mention '" << reason << "'";
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult rejected(const frame_header& h, const std::string& reason,
                                    const frame_caps& caps = roomy()) {
  return rejected(encode_frame_header(h), reason, caps);
}

TEST(FrameHeader, LayoutIsLittleEndianAtTheDocumentedOffsets) {
  const auto b = encode_frame_header(sample());
  ASSERT_EQ(b.size(), 56u);
  EXPECT_EQ(b[0], 'K');
  EXPECT_EQ(b[1], 'V');
  EXPECT_EQ(b[2], 'A');
  EXPECT_EQ(b[3], 'F');
  EXPECT_EQ(b[4], 1);
  EXPECT_EQ(b[5], 17);
  EXPECT_EQ(b[6], 0x34);  // flags 0x9234, low byte first
  EXPECT_EQ(b[7], 0x92);
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(b[8 + i], 8 - i) << "id byte " << i;
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(b[16 + i], 0x18 - i) << "stream byte " << i;
  EXPECT_EQ(b[24], 0xfb);  // -5 as two's complement
  EXPECT_EQ(b[27], 0xff);
  EXPECT_EQ(b[28], 100);
  EXPECT_EQ(b[32], 5000 & 0xff);
  EXPECT_EQ(b[33], 5000 >> 8);
  EXPECT_EQ(b[40], 0);
  EXPECT_EQ(b[48], 0);
  EXPECT_EQ(b[49], 0x10);  // 4096
  for (int i = 52; i < 56; ++i)
    EXPECT_EQ(b[i], 0);
}

TEST(FrameHeader, RoundTrips) {
  std::vector<frame_header> cases;
  cases.push_back(sample());
  frame_header whole_empty;
  whole_empty.type = frame_type::heartbeat;
  whole_empty.flags = frame_flags::first | frame_flags::last;
  cases.push_back(whole_empty);
  frame_header middle = sample();
  middle.flags = 0x3fff;
  middle.meta_size = 0;
  middle.offset = 4096;
  middle.slice_size = 100;
  cases.push_back(middle);
  frame_header last = middle;
  last.flags = frame_flags::last;
  last.offset = 4096;
  last.slice_size = 904;
  cases.push_back(last);
  frame_header extremes;
  extremes.type = 255;
  extremes.flags = frame_flags::first | frame_flags::last;
  extremes.id = std::numeric_limits<std::uint64_t>::max();
  extremes.stream = std::numeric_limits<std::uint64_t>::max();
  extremes.priority = std::numeric_limits<std::int32_t>::min();
  extremes.meta_size = 1 << 16;
  extremes.total_size = 1 << 20;
  extremes.slice_size = 1 << 20;
  cases.push_back(extremes);
  for (const auto& h : cases) {
    const auto b = encode_frame_header(h);
    auto r = decode_frame_header(b.data(), b.size(), roomy());
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(*r, h);
    EXPECT_EQ(r->application_flags(), h.flags & frame_flags::application_mask);
  }
}

TEST(FrameHeader, RejectsTruncatedInput) {
  const auto b = encode_frame_header(sample());
  auto r = decode_frame_header(b.data(), 55, roomy());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::protocol_error);
  EXPECT_FALSE(decode_frame_header(nullptr, 56, roomy()));
}

TEST(FrameHeader, RejectsBadMagic) {
  auto b = encode_frame_header(sample());
  b[0] = 'G';
  b[1] = 'E';
  b[2] = 'T';
  b[3] = ' ';
  EXPECT_TRUE(rejected(b, "bad magic 0x47455420"));
}

TEST(FrameHeader, RejectsOtherVersions) {
  auto b = encode_frame_header(sample());
  b[4] = 2;
  EXPECT_TRUE(rejected(b, "unsupported version 2"));
  b[4] = 0;
  EXPECT_TRUE(rejected(b, "unsupported version 0"));
}

TEST(FrameHeader, RejectsNonZeroReserved) {
  for (int i = 52; i < 56; ++i) {
    auto b = encode_frame_header(sample());
    b[static_cast<std::size_t>(i)] = 1;
    EXPECT_TRUE(rejected(b, "reserved")) << "byte " << i;
  }
}

TEST(FrameHeader, RejectsSliceBeyondTotalWithoutOverflow) {
  auto h = sample();
  h.flags = 0;
  h.meta_size = 0;
  h.offset = 4096;
  h.slice_size = 1000;  // ends at 5096 > 5000
  EXPECT_TRUE(rejected(h, "beyond the total"));
  // offset + slice wraps around to a small number: still rejected.
  h.total_size = std::numeric_limits<std::uint64_t>::max() - 10;
  h.offset = std::numeric_limits<std::uint64_t>::max() - 5;
  h.slice_size = 100;
  frame_caps c = roomy();
  c.max_message = std::numeric_limits<std::uint64_t>::max();
  EXPECT_TRUE(rejected(h, "beyond the total", c));
  // A slice larger than the whole message.
  h = sample();
  h.total_size = 10;
  h.slice_size = 11;
  EXPECT_TRUE(rejected(h, "beyond the total"));
}

TEST(FrameHeader, RejectsMetaOnContinuationFrames) {
  auto h = sample();
  h.flags = frame_flags::last;
  h.offset = 4096;
  h.slice_size = 904;
  h.meta_size = 1;
  EXPECT_TRUE(rejected(h, "not FIRST"));
}

TEST(FrameHeader, RejectsFirstFrameAtNonZeroOffset) {
  auto h = sample();
  h.offset = 1;
  EXPECT_TRUE(rejected(h, "FIRST frame at offset 1"));
}

TEST(FrameHeader, RejectsLastFrameThatDoesNotEndThePayload) {
  auto h = sample();
  h.flags = frame_flags::first | frame_flags::last;  // 4096 of 5000
  EXPECT_TRUE(rejected(h, "LAST frame ends at 4096"));
}

TEST(FrameHeader, RejectsNonLastFrameThatEndsThePayload) {
  auto h = sample();
  h.slice_size = 5000;
  EXPECT_TRUE(rejected(h, "not LAST"));
  frame_header empty;  // an empty message must be one FIRST|LAST frame
  empty.type = 20;
  empty.flags = frame_flags::first;
  EXPECT_TRUE(rejected(empty, "not LAST"));
}

TEST(FrameHeader, RejectsEmptyContinuationSlices) {
  auto h = sample();
  h.flags = 0;
  h.meta_size = 0;
  h.offset = 4096;
  h.slice_size = 0;
  EXPECT_TRUE(rejected(h, "empty slice"));
}

TEST(FrameHeader, RejectsEverythingOverTheCaps) {
  const frame_caps c{64, 1000, 100};
  auto h = sample();
  h.meta_size = 65;
  h.total_size = 500;
  h.slice_size = 100;
  EXPECT_TRUE(rejected(h, "meta of 65 bytes exceeds the cap of 64", c));
  h.meta_size = 64;
  h.total_size = 1001;
  EXPECT_TRUE(rejected(h, "message of 1001 bytes exceeds the cap of 1000", c));
  h.total_size = 1000;
  h.slice_size = 101;
  EXPECT_TRUE(rejected(h, "slice of 101 bytes exceeds the cap of 100", c));
  h.slice_size = 100;
  EXPECT_TRUE(decode_frame_header(encode_frame_header(h).data(), 56, c)) << "at the caps";
  // The 4 GiB claim a hostile peer might make.
  h.total_size = std::uint64_t{4} << 30;
  EXPECT_TRUE(rejected(h, "exceeds the cap", c));
}

TEST(FrameHeader, SharedMemorySlotOnlyWhereTheReceiverMappedASegment) {
  auto h = sample();
  h.shm_slot = 3;
  const auto b = encode_frame_header(h);
  EXPECT_EQ(b[52], 3);
  EXPECT_TRUE(rejected(b, "reserved bytes are not zero")) << "no segment mapped";
  frame_caps c = roomy();
  c.shm_refs = true;
  auto r = decode_frame_header(b.data(), b.size(), c);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, h);
  // Never on a transport frame, nor on a frame without a slice.
  auto t = h;
  t.type = frame_type::heartbeat;
  EXPECT_TRUE(rejected(t, "transport frame", c));
  auto e = h;
  e.flags = frame_flags::first | frame_flags::last;
  e.meta_size = 0;
  e.total_size = 0;
  e.slice_size = 0;
  EXPECT_TRUE(rejected(e, "without a slice", c));
}

}  // namespace
}  // namespace kvactor::serialization

#include "kvactor/serialization/optimizer_states.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "kvactor/serialization/bounded_archive.hpp"

namespace kvactor::wire {

namespace {

constexpr std::uint32_t magic = 0x534f564b;  // "KVOS"
constexpr std::uint16_t version = 1;

using serialization::bounded_input;
using serialization::decode_failure;

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

void put_string(cereal::PortableBinaryOutputArchive& ar, const std::string& s) {
  ar(static_cast<std::uint64_t>(s.size()));
  ar(cereal::binary_data(s.data(), s.size()));
}

}  // namespace

std::vector<std::uint8_t> encode(const states_file& f) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(magic, version);
    ar(static_cast<std::uint8_t>(f.optimizer.has_value()));
    if (f.optimizer) {
      auto cfg = encode(*f.optimizer);
      ar(static_cast<std::uint64_t>(cfg.size()));
      ar(cereal::binary_data(cfg.data(), cfg.size()));
    }
    ar(static_cast<std::uint64_t>(f.keys.size()));
    for (const auto& k : f.keys) {
      ar(static_cast<std::uint8_t>(k.key.is_string), k.key.id);
      put_string(ar, k.key.name);
      ar(k.part, k.num_parts, k.count, static_cast<std::uint32_t>(k.slots.size()));
      auto put_slot = [&ar](const slot_record& s) {
        ar(s.dtype, static_cast<std::uint32_t>(s.dims.size()));
        for (auto d : s.dims)
          ar(d);
        ar(static_cast<std::uint64_t>(s.bytes.size()));
        ar(cereal::binary_data(s.bytes.data(), s.bytes.size()));
      };
      for (const auto& s : k.slots)
        put_slot(s);
      ar(static_cast<std::uint8_t>(k.master.has_value()));
      if (k.master) put_slot(*k.master);
    }
  }
  std::string s = out.str();
  std::vector<std::uint8_t> bytes(s.begin(), s.end());
  const std::uint64_t sum = fnv1a(bytes.data(), bytes.size());
  for (int i = 0; i < 8; ++i)
    bytes.push_back(static_cast<std::uint8_t>(sum >> (8 * i)));
  return bytes;
}

result<states_file> decode_states(const std::uint8_t* data, std::size_t size,
                                  const states_caps& caps) {
  auto fail = [](const std::string& what) {
    return status{errc::protocol_error, "optimizer state file: " + what};
  };
  if (size > caps.max_bytes) return fail("larger than the cap");
  if (!data || size < 9) return fail("too short to be a kvactor optimizer state file");
  std::uint64_t stored = 0;
  for (int i = 0; i < 8; ++i)
    stored |= std::uint64_t{data[size - 8 + i]} << (8 * i);
  const std::size_t body = size - 8;
  try {
    bounded_input in(data, body);
    std::uint32_t m = 0;
    std::uint16_t v = 0;
    in.read(m);
    if (m != magic) throw decode_failure{"not a kvactor optimizer state file (bad magic)"};
    in.read(v);
    if (v != version)
      throw decode_failure{"version " + std::to_string(v) + " is not supported (this build reads " +
                           std::to_string(version) + ")"};
    if (fnv1a(data, body) != stored) throw decode_failure{"checksum mismatch: the file is corrupt"};
    states_file f;
    std::uint8_t has_cfg = 0;
    in.read(has_cfg);
    if (has_cfg > 1) throw decode_failure{"bad optimizer flag"};
    if (has_cfg) {
      const auto n = in.read_length(64 * 1024, 1, "optimizer config");
      std::vector<std::uint8_t> cfg(static_cast<std::size_t>(n));
      in.read_bytes(cfg.data(), cfg.size());
      auto c = decode_optimizer_config(cfg.data(), cfg.size());
      if (!c) throw decode_failure{c.error().message()};
      f.optimizer = std::move(*c);
    }
    const auto nkeys = in.read_length(std::uint64_t{1} << 32, 29, "key count");
    f.keys.reserve(static_cast<std::size_t>(nkeys));
    for (std::uint64_t i = 0; i < nkeys; ++i) {
      key_state_record k;
      std::uint8_t is_string = 0;
      in.read(is_string);
      if (is_string > 1) throw decode_failure{"bad key kind"};
      k.key.is_string = is_string == 1;
      in.read(k.key.id);
      in.read_string(k.key.name, 4096, "key name");
      in.read(k.part);
      in.read(k.num_parts);
      if (k.num_parts == 0 || k.part >= k.num_parts) throw decode_failure{"bad key part"};
      in.read(k.count);
      std::uint32_t nslots = 0;
      in.read(nslots);
      if (nslots > caps.max_slots) throw decode_failure{"too many state slots"};
      auto get_slot = [&in, &caps](slot_record& s) {
        in.read(s.dtype);
        if (s.dtype > 6) throw decode_failure{"bad element type"};
        std::uint32_t ndims = 0;
        in.read(ndims);
        if (ndims > caps.max_dims) throw decode_failure{"too many dimensions"};
        s.dims.resize(ndims);
        std::uint64_t numel = ndims ? 1 : 0;
        constexpr std::uint64_t max_numel = std::uint64_t{1} << 40;
        for (auto& d : s.dims) {
          in.read(d);
          if (d <= 0 || d > static_cast<std::int64_t>(max_numel))
            throw decode_failure{"bad dimension"};
          // Checked before multiplying: two dims of up to 2^40 each would wrap the product
          // around 2^64, and a shape claiming ~2^64 elements would pass with a few bytes.
          if (static_cast<std::uint64_t>(d) > max_numel / numel)
            throw decode_failure{"too many elements"};
          numel *= static_cast<std::uint64_t>(d);
        }
        const auto nb = in.read_length(caps.max_bytes, 1, "state bytes");
        static const std::uint64_t sizes[] = {4, 2, 2, 8, 4, 8, 1};
        if (nb != numel * sizes[s.dtype])
          throw decode_failure{"state bytes do not match the shape"};
        s.bytes.resize(static_cast<std::size_t>(nb));
        in.read_bytes(s.bytes.data(), s.bytes.size());
      };
      k.slots.resize(nslots);
      for (auto& s : k.slots)
        get_slot(s);
      std::uint8_t has_master = 0;
      in.read(has_master);
      if (has_master > 1) throw decode_failure{"bad master flag"};
      if (has_master) {
        k.master.emplace();
        get_slot(*k.master);
      }
      f.keys.push_back(std::move(k));
    }
    if (in.remaining() != 0) throw decode_failure{"trailing bytes"};
    return f;
  } catch (const decode_failure& e) {
    return fail(e.what());
  } catch (const cereal::Exception& e) {
    return fail(e.what());
  } catch (const std::bad_alloc&) {
    return fail("not enough memory for its contents");
  }
}

status write_states_file(const std::string& path, const states_file& f) {
  const auto bytes = encode(f);
  // Written to a temporary name first, so a crash never leaves a half-written checkpoint
  // under the real name.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return status{errc::invalid_argument, "cannot write " + tmp};
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) return status{errc::invalid_argument, "writing " + tmp + " failed"};
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return status{errc::invalid_argument, "cannot rename " + tmp + " to " + path};
  return {};
}

result<states_file> read_states_file(const std::string& path, const states_caps& caps) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return status{errc::invalid_argument, "cannot read optimizer states from " + path};
  const auto size = static_cast<std::uint64_t>(in.tellg());
  if (size > caps.max_bytes)
    return status{errc::protocol_error, path + " is larger than the cap on state files"};
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (!in) return status{errc::invalid_argument, "reading " + path + " failed"};
  auto r = decode_states(bytes.data(), bytes.size(), caps);
  if (!r) return status{r.error().code(), path + ": " + r.error().message()};
  return r;
}

}  // namespace kvactor::wire

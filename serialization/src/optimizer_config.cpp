#include "kvactor/serialization/optimizer_config.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <sstream>

#include "kvactor/serialization/bounded_archive.hpp"

namespace kvactor {

namespace {
constexpr std::uint32_t magic = 0x4b564f43;  // "KVOC"
constexpr std::uint16_t version = 1;
}  // namespace

std::vector<std::uint8_t> encode(const optimizer_config& cfg) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(magic, version);
    ar(static_cast<std::uint64_t>(cfg.type.size()));
    ar(cereal::binary_data(cfg.type.data(), cfg.type.size()));
    ar(static_cast<std::uint64_t>(cfg.params.size()));
    for (const auto& [name, value] : cfg.params) {
      ar(static_cast<std::uint64_t>(name.size()));
      ar(cereal::binary_data(name.data(), name.size()));
      ar(value);
    }
  }
  const std::string s = out.str();
  return {s.begin(), s.end()};
}

result<optimizer_config> decode_optimizer_config(const std::uint8_t* data, std::size_t size,
                                                 const config_caps& caps) {
  if (size > caps.max_bytes)
    return status{errc::protocol_error, "optimizer config of " + std::to_string(size) +
                                            " bytes exceeds the cap of " +
                                            std::to_string(caps.max_bytes)};
  if (!data && size) return status{errc::protocol_error, "null optimizer config buffer"};
  return serialization::decode_whole<optimizer_config>(
      "optimizer config", data, size, [&](serialization::bounded_input& in, optimizer_config& cfg) {
        // The portable archive starts with one endianness byte.
        if (size < 1) throw serialization::decode_failure{"empty input"};
        std::uint32_t m = 0;
        std::uint16_t v = 0;
        in.read(m);
        if (m != magic) throw serialization::decode_failure{"not an optimizer config (bad magic)"};
        in.read(v);
        if (v != version)
          throw serialization::decode_failure{"optimizer config version " + std::to_string(v) +
                                              " is not supported (this build reads version " +
                                              std::to_string(version) + ")"};
        in.read_string(cfg.type, caps.max_name_length, "optimizer type");
        const auto n =
            in.read_length(caps.max_params, 2 * sizeof(std::uint64_t), "parameter count");
        for (std::uint64_t i = 0; i < n; ++i) {
          std::string name;
          in.read_string(name, caps.max_name_length, "parameter name");
          double value = 0;
          in.read(value);
          if (!cfg.params.emplace(std::move(name), value).second)
            throw serialization::decode_failure{"duplicate parameter"};
        }
      });
}

}  // namespace kvactor

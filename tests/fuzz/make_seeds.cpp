// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) with the project's
// own encoders, so that every seed is something a real peer or file would hold. Run by hand
// after a wire or file format changes, then commit what it wrote:
//   build/fuzz/tests/fuzz/kvactor_fuzz_make_seeds tests/fuzz/corpus
// Deterministic: the same build writes the same bytes (a fixed PRNG stands in for nonces and
// tensor data), so regenerating shows in git only what really changed.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kvactor/dtype.hpp"
#include "kvactor/net/handshake.hpp"
#include "kvactor/serialization/frame.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/serialization/optimizer_states.hpp"
#include "kvactor/serialization/protocol.hpp"

namespace {

namespace fs = std::filesystem;
namespace hs = kvactor::net::handshake;
namespace ser = kvactor::serialization;
using namespace kvactor::wire;
using bytes = std::vector<std::uint8_t>;

fs::path root;
std::mt19937_64 rng{20240611};
int written = 0;

void write(const std::string& target, const std::string& name, const bytes& b) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) {
    std::fprintf(stderr, "make_seeds: cannot write %s\n", (dir / name).c_str());
    std::exit(1);
  }
  ++written;
}

// The selector byte that the dispatching targets read first.
bytes tagged(std::uint8_t selector, const bytes& b) {
  bytes out{selector};
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

template <std::size_t N>
std::array<std::uint8_t, N> random_array() {
  std::array<std::uint8_t, N> a{};
  for (auto& x : a)
    x = static_cast<std::uint8_t>(rng());
  return a;
}

// ---------------------------------------------------------------------------------- frames
void frames() {
  using ser::frame_header;
  namespace ff = ser::frame_flags;
  namespace ft = ser::frame_type;
  const std::uint16_t whole = ff::first | ff::last;
  auto put = [](const std::string& name, const frame_header& h) {
    auto b = ser::encode_frame_header(h);
    write("frame", name, bytes(b.begin(), b.end()));
  };
  put("challenge", {ft::challenge, whole, 0, 0, 0, 300, 0, 0, 0});
  put("hello", {ft::hello, whole, 0, 0, 0, 340, 0, 0, 0});
  put("welcome", {ft::welcome, whole, 0, 0, 0, 50, 0, 0, 0});
  put("heartbeat", {ft::heartbeat, whole, 0, 0, 0, 0, 0, 0, 0});
  put("goodbye", {ft::goodbye, whole, 0, 0, 0, 40, 0, 0, 0});
  const auto push = static_cast<std::uint8_t>(msg::push);
  const auto reply = static_cast<std::uint8_t>(msg::reply);
  put("push-small", {push, whole, 17, 3, 0, 52, 4096, 0, 4096});
  put("pull-empty", {static_cast<std::uint8_t>(msg::pull), whole, 18, 3, -5, 52, 0, 0, 0});
  put("reply-flags",
      {reply, static_cast<std::uint16_t>(whole | flag_response), 18, 3, 0, 9, 4096, 0, 4096});
  // A 64 MiB push in 1 MiB slices: first, middle, last.
  const std::uint64_t total = std::uint64_t{64} << 20, slice = 1 << 20;
  put("push-big-first", {push, ff::first | flag_compressed, 1ull << 40, 7, 10, 60, total, 0,
                         static_cast<std::uint32_t>(slice)});
  put("push-big-middle", {push, flag_compressed, 1ull << 40, 7, 10, 0, total, 31 * slice,
                          static_cast<std::uint32_t>(slice)});
  put("push-big-last", {push, ff::last | flag_compressed, 1ull << 40, 7, 10, 0, total,
                        total - slice, static_cast<std::uint32_t>(slice)});
  put("push-rows", {static_cast<std::uint8_t>(msg::push_rows), whole, 99, 1, 3, 60, 8 * 5 + 5 * 16,
                    0, 8 * 5 + 5 * 16});
  // A header followed by small receiver caps (meta 512, message 1 MiB, slice 64 KiB).
  auto h = ser::encode_frame_header({ft::hello, whole, 0, 0, 0, 340, 0, 0, 0});
  bytes with_caps(h.begin(), h.end());
  auto le = [&with_caps](std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i)
      with_caps.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  le(512, 4);
  le(std::uint64_t{1} << 20, 8);
  le(std::uint64_t{1} << 16, 4);
  write("frame", "hello-small-caps", with_caps);
}

// ------------------------------------------------------------------------------- handshake
void handshake() {
  const std::string secret = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
  for (const std::string cluster : {"3f9a1c22d47e8b01", "job-42", ""}) {
    const std::string tag = cluster.empty() ? "nocluster" : cluster;
    hs::challenge c{hs::protocol_version, cluster, random_array<32>()};
    write("handshake", "challenge-" + tag, tagged(0, encode(c)));
    for (const auto& [role, rank] :
         {std::pair<std::string, std::int64_t>{"worker", 3}, {"server", 0}, {"scheduler", -1}}) {
      hs::hello h{cluster, role, rank, random_array<32>(), {}};
      h.mac_b = *hs::hello_mac(secret, cluster, role, rank, c.nonce_a, h.nonce_b);
      write("handshake", "hello-" + tag + "-" + role + std::to_string(rank), tagged(1, encode(h)));
      hs::welcome w{"scheduler", 0, {}};
      w.mac_a = *hs::welcome_mac(secret, cluster, w.role, w.rank, h.nonce_b, c.nonce_a);
      write("handshake", "welcome-" + tag + "-to-" + role, tagged(2, encode(w)));
    }
  }
  write("handshake", "goodbye-ok", tagged(3, encode(hs::goodbye{kvactor::errc::ok, ""})));
  write("handshake", "goodbye-unauthenticated",
        tagged(3, encode(hs::goodbye{kvactor::errc::unauthenticated, "bad MAC in HELLO"})));
  write("handshake", "goodbye-timeout",
        tagged(3, encode(hs::goodbye{kvactor::errc::timeout, "peer silent for 3000 ms"})));
  write("handshake", "goodbye-long",
        tagged(3, encode(hs::goodbye{kvactor::errc::protocol_error, std::string(400, 'x')})));
}

// -------------------------------------------------------------------------------- protocol
kvactor::optimizer_config adam_config() {
  return {"adam",
          {{"learning_rate", 0.001},
           {"beta1", 0.9},
           {"beta2", 0.999},
           {"epsilon", 1e-8},
           {"wd", 1e-4},
           {"rescale_grad", 1.0 / 256},
           {"clip_gradient", -1}}};
}

wire_key int_key(std::int64_t id) {
  return wire_key::from(kvactor::key{id});
}
wire_key str_key(const std::string& s) {
  return wire_key::from(kvactor::key{s});
}

void protocol() {
  auto put = [](const std::string& name, std::uint8_t sel, const bytes& b) {
    write("protocol", name, tagged(sel, b));
  };
  put("register-server", 0, encode(register_meta{"server", "10.0.0.12", 41235, 1}));
  put("register-worker", 0, encode(register_meta{"worker", "", 0, -1}));
  put("register-ipv6", 0, encode(register_meta{"server", "fe80::1ff:fe23:4567:890a", 9091, 7}));
  put("node-table-empty", 1, encode(node_table_meta{0, 1, 0, {}, ""}));
  put("node-table-3", 1,
      encode(node_table_meta{
          4, 8, 3, {{"10.0.0.2", 9000}, {"node-b.cluster", 9001}, {"127.0.0.1", 65535}}, ""}));
  put("barrier-0", 2, encode(barrier_meta{0}));
  put("barrier-big", 2, encode(barrier_meta{(1ull << 40) + 3}));
  put("node-lost", 3, encode(node_lost_meta{"worker", 5, "no heartbeat for 3000 ms"}));
  put("node-lost-server", 3, encode(node_lost_meta{"server", 0, "connection reset by peer"}));
  put("node-done", 4, encode(node_done_meta{"worker", 2}));
  using kvactor::dtype;
  auto dt = [](dtype t) { return static_cast<std::uint8_t>(t); };
  put("data-int-f32", 5, encode(data_meta{int_key(3), 0, 1, 1000, dt(dtype::float32), 10, 0}));
  put("data-int-big-f16", 5,
      encode(data_meta{int_key((1ll << 40) + 7), 2, 4, 1 << 20, dt(dtype::float16), 1024, 0}));
  put("data-neg-bf16", 5, encode(data_meta{int_key(-1), 0, 1, 8, dt(dtype::bfloat16), 1, 0}));
  put("data-str-f64", 5,
      encode(data_meta{str_key("fc1_weight"), 1, 2, 4096, dt(dtype::float64), 64, 0}));
  put("data-str-i64-rows", 5,
      encode(data_meta{str_key("embedding.weight"), 0, 1, 50000 * 16, dt(dtype::int64), 16, 5}));
  put("data-int-u8-rows", 5, encode(data_meta{int_key(0), 0, 1, 300, dt(dtype::uint8), 3, 100}));
  put("data-int32", 5, encode(data_meta{int_key(123456789), 0, 3, 7, dt(dtype::int32), 7, 0}));
  put("data-empty", 5, encode(data_meta{str_key(""), 0, 1, 0, dt(dtype::float32), 1, 0}));
  put("command-controller", 6,
      encode(command_meta{static_cast<std::uint8_t>(command::controller), [] {
                            auto b = kvactor::encode(adam_config());
                            return std::string(b.begin(), b.end());
                          }()}));
  put("command-sync", 6, encode(command_meta{static_cast<std::uint8_t>(command::sync_mode), "1"}));
  put("command-mp", 6,
      encode(command_meta{static_cast<std::uint8_t>(command::set_multi_precision), "1"}));
  put("command-stop", 6, encode(command_meta{static_cast<std::uint8_t>(command::stop_server), ""}));
  put("command-gc", 6,
      encode(command_meta{static_cast<std::uint8_t>(command::set_gradient_compression),
                          "type=2bit,threshold=0.5"}));
  put("command-profiler", 6,
      encode(command_meta{static_cast<std::uint8_t>(command::set_profiler_params),
                          "state=run,filename=/tmp/profile.json"}));
  put("command-save", 6,
      encode(command_meta{static_cast<std::uint8_t>(command::save_states), "1/tmp/ckpt/epoch3"}));
  put("command-load", 6,
      encode(command_meta{static_cast<std::uint8_t>(command::load_states), "/tmp/ckpt/epoch3"}));
  put("reply-ok", 7, encode(reply_meta{0, ""}));
  put("reply-error", 7,
      encode(reply_meta{static_cast<std::uint8_t>(kvactor::errc::shape_mismatch),
                        "key 3: pushed shape (4, 5) but the key has (4, 4)"}));
  auto ty = [](msg m) { return static_cast<std::uint8_t>(m); };
  put("batch-push-pull", 8,
      encode(batch_meta{
          {{ty(msg::push), 0, 11, 0, 16, data_meta{int_key(3), 0, 1, 4, dt(dtype::float32), 1, 0}},
           {ty(msg::pull), 0, 12, 5, 0,
            data_meta{str_key("fc1_bias"), 0, 1, 64, dt(dtype::float32), 1, 0}},
           {ty(msg::push_rows), 2, 13, 0, 24,
            data_meta{int_key(9), 0, 1, 30, dt(dtype::float32), 3, 2}}}}));
  put("batch-reply", 9,
      encode(batch_reply_meta{{{11, 0, "", 0},
                               {12, 0, "", 256},
                               {13, static_cast<std::uint8_t>(kvactor::errc::not_initialized),
                                "key 9 is not initialized", 0}}}));
}

// ----------------------------------------------------------------- optimizer configs
void optimizer_configs() {
  auto put = [](const std::string& name, const kvactor::optimizer_config& c) {
    write("optimizer_config", name, kvactor::encode(c));
  };
  put("sgd-default", kvactor::sgd_config());
  put("sgd-momentum", kvactor::sgd_config(0.1, 0.9, 1e-4, 1.0 / 128, 5.0));
  put("adam", adam_config());
  put("nag", {"nag",
              {{"learning_rate", 0.05},
               {"momentum", 0.9},
               {"lr_scheduler.step", 1000},
               {"lr_scheduler.factor", 0.5}}});
  put("ftrl", {"ftrl", {{"learning_rate", 0.1}, {"lamda1", 0.01}, {"beta", 1}}});
  put("lamb", {"lamb",
               {{"learning_rate", 0.002},
                {"beta1", 0.9},
                {"beta2", 0.999},
                {"lower_bound", 1e-3},
                {"upper_bound", 10},
                {"bias_correction", 1}}});
  put("signum", {"signum", {{"learning_rate", 0.01}, {"momentum", 0.9}, {"wd_lh", 0}}});
  put("rmsprop-centered", {"rmsprop",
                           {{"learning_rate", 0.001},
                            {"gamma1", 0.9},
                            {"gamma2", 0.9},
                            {"centered", 1},
                            {"clip_weights", 0.01}}});
  put("empty-params", {"adagrad", {}});
}

// ------------------------------------------------------------------------ state files
slot_record slot(kvactor::dtype t, std::vector<std::int64_t> dims) {
  slot_record s;
  s.dtype = static_cast<std::uint8_t>(t);
  s.dims = std::move(dims);
  std::uint64_t n = s.dims.empty() ? 0 : 1;
  for (auto d : s.dims)
    n *= static_cast<std::uint64_t>(d);
  std::normal_distribution<float> normal(0.f, 0.05f);
  for (std::uint64_t i = 0; i < n; ++i) {
    const float f = normal(rng);
    auto append = [&s](const void* p, std::size_t k) {
      const auto* b = static_cast<const std::uint8_t*>(p);
      s.bytes.insert(s.bytes.end(), b, b + k);
    };
    switch (t) {
      case kvactor::dtype::float32:
        append(&f, 4);
        break;
      case kvactor::dtype::float16: {
        auto h = kvactor::to_float16(f);
        append(&h.bits, 2);
        break;
      }
      case kvactor::dtype::bfloat16: {
        auto h = kvactor::to_bfloat16(f);
        append(&h.bits, 2);
        break;
      }
      case kvactor::dtype::float64: {
        const double d = f;
        append(&d, 8);
        break;
      }
      case kvactor::dtype::int32: {
        const std::int32_t v = static_cast<std::int32_t>(i);
        append(&v, 4);
        break;
      }
      case kvactor::dtype::int64: {
        const std::int64_t v = static_cast<std::int64_t>(i) * 1000003;
        append(&v, 8);
        break;
      }
      case kvactor::dtype::uint8: {
        const auto v = static_cast<std::uint8_t>(i);
        append(&v, 1);
        break;
      }
    }
  }
  return s;
}

void state_files() {
  using kvactor::dtype;
  // Written twice: odd mode (body only, the target appends the checksum) and even mode (the
  // whole file as save_optimizer_states writes it).
  auto put = [](const std::string& name, const states_file& f) {
    const bytes file = encode(f);
    write("optimizer_states", name + "-file", tagged(0, file));
    write("optimizer_states", name + "-body", tagged(1, bytes(file.begin(), file.end() - 8)));
  };
  put("empty", states_file{});
  states_file sgd;
  sgd.optimizer = kvactor::sgd_config(0.1, 0.9);
  sgd.keys.push_back({int_key(0), 0, 1, 12, {slot(dtype::float32, {4, 3})}, std::nullopt});
  sgd.keys.push_back({int_key(1), 0, 1, 12, {slot(dtype::float32, {10})}, std::nullopt});
  put("sgd-momentum", sgd);
  states_file adam;
  adam.optimizer = adam_config();
  adam.keys.push_back({str_key("fc1_weight"),
                       1,
                       2,
                       3,
                       {slot(dtype::float32, {2, 2, 2}), slot(dtype::float32, {2, 2, 2})},
                       std::nullopt});
  adam.keys.push_back({int_key((1ll << 40) + 7), 0, 1, 100, {}, std::nullopt});
  put("adam-split", adam);
  states_file mp;
  mp.keys.push_back({str_key("conv0_weight"),
                     0,
                     1,
                     5,
                     {slot(dtype::float16, {3, 3})},
                     slot(dtype::float32, {3, 3})});
  mp.keys.push_back(
      {str_key("bn_gamma"), 0, 1, 5, {slot(dtype::bfloat16, {6})}, slot(dtype::float32, {6})});
  put("multi-precision", mp);
  states_file mixed;
  mixed.optimizer = kvactor::optimizer_config{"adagrad", {}};
  mixed.keys.push_back({int_key(-3), 2, 3, 1, {slot(dtype::float64, {2, 1})}, std::nullopt});
  mixed.keys.push_back(
      {int_key(9), 0, 1, 0, {slot(dtype::int32, {5}), slot(dtype::int64, {2})}, std::nullopt});
  mixed.keys.push_back(
      {int_key(10), 0, 1, 2, {slot(dtype::uint8, {7}), slot(dtype::float32, {})}, std::nullopt});
  put("mixed-dtypes", mixed);
}

// -------------------------------------------------------------------------- hostfiles
void hostfiles() {
  auto put = [](const std::string& name, const std::string& text) {
    write("hostfile", name, bytes(text.begin(), text.end()));
  };
  put("plain", "node1\nnode2\nnode3\n");
  put("slots-mpich", "# 4 GPUs each\nnode1:4\nnode2:4\n\nnode3:2  # spare\n");
  put("slots-openmpi", "10.0.0.1 slots=8\n10.0.0.2 slots=8 max_slots=8\n");
  put("users", "alice@gpu-a.cluster.local\nbob@gpu-b.cluster.local:2\n");
  put("ipv6", "fe80::1\n[fe80::2]\n::1\n");
  put("crlf", "hostA\r\nhostB\r\n");
  put("tabs", "\t  node1\t slots=2\n  # comment only\n\nnode2");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  root = argv[1];
  frames();
  handshake();
  protocol();
  optimizer_configs();
  state_files();
  hostfiles();
  std::printf("make_seeds: wrote %d seeds under %s\n", written, root.c_str());
  return 0;
}

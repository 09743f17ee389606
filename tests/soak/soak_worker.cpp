// The worker of scripts/soak.sh: a dist_sync job of mixed operations, repeated until SECONDS
// have passed, every result checked exactly. Per cycle: many small dense keys (one push and
// one pull of all of them), a few large keys split over the servers (pushpull), a row-sparse
// table (push rows, row_sparse_pull), and every fourth cycle a 2-bit compressed phase.
// Without an optimizer a round's pushes replace the value with their sum, so every expected
// value is a closed form of (rank, cycle, key), and a leak cannot hide behind growing state.
//   usage: soak_worker SECONDS [MIN_CYCLES]   (in a cluster: kvactor-launch -n 2 -s 2 -- ...)
// Prints progress lines, "OK soak worker R cycles N" at the end; a wrong value prints
// "MISMATCH: ..." and exits 1, any other error "ERROR: ..." and exits 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvactor/kvstore.hpp"

using kvactor::tensor;

namespace {

constexpr int kSmallKeys = 256;      // many small keys ...
constexpr std::int64_t kSmall = 16;  // ... of 16 floats
constexpr int kLargeKeys = 2;        // a few large ones, split over every server
constexpr std::int64_t kLarge = std::int64_t{1} << 20;
constexpr std::int64_t kRows = 20000, kCols = 8;  // the row-sparse table
constexpr int kSharedRows = 32, kOwnRows = 16;    // rows every worker / one worker pushes
constexpr int kCompressedKeys = 4;
constexpr std::int64_t kCompressed = 4096;
constexpr int kCompressedPushes = 4;  // even: each residual is back at 0 after a phase
constexpr float kThreshold = 0.5f;

int rank_ = -1;
int W = 0;

[[noreturn]] void mismatch(const std::string& what) {
  std::printf("MISMATCH: worker %d: %s\n", rank_, what.c_str());
  std::fflush(stdout);
  std::exit(1);
}

// Every element of t equals v.
void expect_all(const tensor& t, float v, const std::string& what) {
  const float* p = t.cdata<float>();
  for (std::size_t i = 0; i < t.size(); ++i)
    if (p[i] != v)
      mismatch(what + ": element " + std::to_string(i) + " is " + std::to_string(p[i]) +
               ", expected " + std::to_string(v));
}

// A small multiplier, 1..5, that changes with the cycle and the key.
float mult(long cycle, long k) {
  return static_cast<float>((cycle * 7 + k) % 5 + 1);
}

kvactor::key large_key(int i) {
  return kvactor::key{static_cast<std::int64_t>(1000000 + i)};
}

kvactor::key compressed_key(int i) {
  return kvactor::key{static_cast<std::int64_t>(2000000 + i)};
}

// Int keys only: a store holds int keys or string keys, not both.
const kvactor::key ctl_key{std::int64_t{3000000}};
const kvactor::key table_key{std::int64_t{4000000}};

// The rows worker r pushes in a cycle: some every worker pushes, some only r; none twice.
std::vector<std::int64_t> rows_of(int r, long cycle) {
  std::vector<std::int64_t> ids;
  for (int j = 0; j < kSharedRows; ++j)
    ids.push_back((cycle * 37 + j * 611) % kRows);
  for (int j = 0; j < kOwnRows; ++j)
    ids.push_back((cycle * 37 + kSharedRows * 611 + r * 4001 + j * 97) % kRows);
  return ids;
}

class soak {
 public:
  explicit soak(kvactor::kvstore& kv) : kv_(kv) {
    std::vector<kvactor::key> keys;
    std::vector<tensor> init;
    for (int k = 0; k < kSmallKeys; ++k) {
      keys.emplace_back(static_cast<std::int64_t>(k));
      init.push_back(tensor::zeros({kSmall}));
      small_in_.push_back(tensor::zeros({kSmall}));
      small_out_.push_back(tensor::zeros({kSmall}));
    }
    for (int i = 0; i < kLargeKeys; ++i) {
      keys.push_back(large_key(i));
      init.push_back(tensor::zeros({kLarge}));
      large_in_.push_back(tensor::zeros({kLarge}));
      large_out_.push_back(tensor::zeros({kLarge}));
    }
    for (int i = 0; i < kCompressedKeys; ++i) {
      keys.push_back(compressed_key(i));
      init.push_back(tensor::zeros({kCompressed}));
      comp_in_.push_back(tensor::zeros({kCompressed}));
      comp_out_.push_back(tensor::zeros({kCompressed}));
    }
    keys.push_back(ctl_key);
    init.push_back(tensor::zeros({1}));
    small_keys_.assign(keys.begin(), keys.begin() + kSmallKeys);
    kv_.init(keys, init).get();
    kv_.init(table_key, kvactor::row_sparse_tensor::zeros({kRows, kCols})).get();
    kv_.barrier().get();
  }

  // Whether every worker goes on: rank 0 decides, everyone learns it in the same round.
  bool go_on(bool mine) {
    tensor out = tensor::zeros({1});
    kv_.pushpull(ctl_key, tensor::full({1}, (rank_ == 0 && !mine) ? 1 : 0), out).get();
    return out.cdata<float>()[0] == 0;
  }

  void cycle(long c) {
    dense(c);
    sparse(c);
    if (c % 4 == 3) compressed(c);
  }

 private:
  void dense(long c) {
    const float sum_ranks = W * (W + 1) / 2.0f;
    for (int k = 0; k < kSmallKeys; ++k)
      small_in_[k].fill((rank_ + 1) * mult(c, k));
    kv_.push(small_keys_, small_in_);
    kv_.pull(small_keys_, small_out_).get();
    for (int k = 0; k < kSmallKeys; ++k)
      expect_all(small_out_[k], sum_ranks * mult(c, k),
                 "cycle " + std::to_string(c) + " small key " + std::to_string(k));
    for (int i = 0; i < kLargeKeys; ++i) {
      large_in_[i].fill((rank_ + 1) * mult(c, 1000 + i));
      kv_.pushpull(large_key(i), large_in_[i], large_out_[i]).get();
      expect_all(large_out_[i], sum_ranks * mult(c, 1000 + i),
                 "cycle " + std::to_string(c) + " large key " + std::to_string(i));
    }
  }

  void sparse(long c) {
    const auto mine = rows_of(rank_, c);
    std::vector<float> vals(mine.size() * kCols, static_cast<float>(rank_ + 1));
    kv_.push(table_key,
             kvactor::row_sparse_tensor::from_rows(
                 mine, tensor::from(vals, {static_cast<std::int64_t>(mine.size()), kCols}),
                 {kRows, kCols}))
        .get();
    // Every worker's rows (their sums), plus rows nobody pushed this cycle (zero).
    std::vector<float> expect(kRows, 0.0f);
    for (int r = 0; r < W; ++r)
      for (auto id : rows_of(r, c))
        expect[id] += static_cast<float>(r + 1);
    std::vector<std::int64_t> ask;
    for (int r = 0; r < W; ++r)
      for (auto id : rows_of(r, c))
        ask.push_back(id);
    for (int j = 0; j < 8; ++j)
      ask.push_back((c * 131 + j * 2503 + 1) % kRows);
    kv_.row_sparse_pull(table_key, sparse_out_,
                        tensor::from(ask, {static_cast<std::int64_t>(ask.size())}))
        .get();
    const float* p = sparse_out_.cdata<float>();
    for (auto id : ask)
      for (int j = 0; j < kCols; ++j)
        if (p[id * kCols + j] != expect[id])
          mismatch("cycle " + std::to_string(c) + " row " + std::to_string(id) + " is " +
                   std::to_string(p[id * kCols + j]) + ", expected " + std::to_string(expect[id]));
  }

  // 2-bit compression with a residual per key: each worker's gradient is +-t/2 per push, so
  // its codes go 0, +-t, 0, +-t; every worker simulates every worker's residual.
  void compressed(long c) {
    kv_.set_gradient_compression("2bit", kThreshold).get();
    kv_.barrier().get();
    std::vector<float> residual(W, 0.0f);
    auto grad = [c](int r) { return ((r + c) % 2 == 0 ? 0.5f : -0.5f) * kThreshold; };
    for (int push = 0; push < kCompressedPushes; ++push) {
      float expect = 0;
      for (int r = 0; r < W; ++r) {
        residual[r] += grad(r);
        float code = 0;
        if (residual[r] >= kThreshold)
          code = kThreshold;
        else if (residual[r] <= -kThreshold)
          code = -kThreshold;
        residual[r] -= code;
        expect += code;
      }
      for (int i = 0; i < kCompressedKeys; ++i) {
        comp_in_[i].fill(grad(rank_));
        kv_.pushpull(compressed_key(i), comp_in_[i], comp_out_[i]).get();
        expect_all(comp_out_[i], expect,
                   "cycle " + std::to_string(c) + " compressed push " + std::to_string(push) +
                       " key " + std::to_string(i));
      }
    }
    kv_.set_gradient_compression("none").get();
    kv_.barrier().get();
  }

  kvactor::kvstore& kv_;
  std::vector<kvactor::key> small_keys_;
  std::vector<tensor> small_in_, small_out_, large_in_, large_out_, comp_in_, comp_out_;
  tensor sparse_out_ = tensor::zeros({kRows, kCols});
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2 || argc > 3 || std::atoi(argv[1]) <= 0) {
    std::fprintf(stderr,
                 "usage: soak_worker SECONDS [MIN_CYCLES] (as a worker of a kvactor cluster)\n");
    return 2;
  }
  const auto seconds = std::chrono::seconds(std::atoi(argv[1]));
  const long min_cycles = argc > 2 ? std::atol(argv[2]) : 1;
  try {
    auto kv = kvactor::create("dist_sync");
    rank_ = kv.rank();
    W = kv.num_workers();
    const auto start = std::chrono::steady_clock::now();
    soak s(kv);
    auto last_report = start;
    long c = 0;
    for (; s.go_on(c < min_cycles || std::chrono::steady_clock::now() - start < seconds); ++c) {
      s.cycle(c);
      const auto now = std::chrono::steady_clock::now();
      if (rank_ == 0 && now - last_report >= std::chrono::seconds(10)) {
        std::printf("soak worker 0: %ld cycles after %lld s\n", c + 1,
                    static_cast<long long>(
                        std::chrono::duration_cast<std::chrono::seconds>(now - start).count()));
        last_report = now;
      }
    }
    kv.barrier().get();
    std::printf("OK soak worker %d cycles %ld\n", rank_, c);
  } catch (const kvactor::error& e) {
    std::printf("ERROR: worker %d: %s\n", rank_, e.what());
    return 1;
  }
  return 0;
}

// The checks every optimizer goes through (header-only, shared by the optimizer test files):
//  - float32/float64: several updates against the free-running double reference;
//  - float16/bfloat16: each update against the reference step taken from the stored state;
//  - begin_update + update_range over uneven ranges, concurrently, is bit-identical to update();
//  - lazy row updates: only the given rows (and their slot rows) change, they match the dense
//    update on those rows, and several of them match the reference applied to those rows.
#pragma once

#include <gtest/gtest.h>

#include <thread>

#include "optimizer_reference.hpp"

namespace kvactor::optref {

struct opt_case {
  std::string name;
  std::string type;
  params p;
  ref_update ref;
  std::size_t slots = 0;
  key k = key{7};

  optimizer_config config() const { return optimizer_config{type, p}; }
  /// learning_rate * lr_mult.<k>, wd * wd_mult.<k> (these cases have no schedule).
  hyper at(std::uint64_t t) const {
    const std::string name = k.is_int() ? std::to_string(k.as_int()) : k.as_string();
    return {t, get(p, "learning_rate", 0.01) * get(p, "lr_mult." + name, 1.0),
            get(p, "wd", 0.0) * get(p, "wd_mult." + name, 1.0)};
  }
};

inline std::ostream& operator<<(std::ostream& os, const opt_case& c) {
  return os << c.name;
}

constexpr std::size_t test_n = 129;
constexpr int test_steps = 6;

inline std::function<double(double)> identity_rounding() {
  return [](double x) { return x; };
}

/// float32 / float64: `steps` updates from one start, the reference in double all along.
template <class W>
void check_free_running(const opt_case& c, double tol) {
  SCOPED_TRACE(c.name + " as " + to_string(dtype_of_v<W>));
  const dtype t = dtype_of_v<W>;
  std::mt19937_64 rng(1234);
  auto u = make(c.config());
  const shape s{static_cast<std::int64_t>(test_n)};
  tensor w = make_tensor(uniform(rng, test_n, -1, 1), s, t);
  auto state = u->make_state(c.k, w);
  optimizer_state& st = state_of(state);
  ASSERT_EQ(st.slots.size(), c.slots);
  for (const auto& slot : st.slots) {
    EXPECT_EQ(slot.dtype(), t);
    EXPECT_EQ(slot.shape(), s);
  }
  std::vector<double> rw = values(w);
  std::vector<std::vector<double>> rs(c.slots, std::vector<double>(test_n, 0.0));
  const auto round = identity_rounding();
  for (int step = 1; step <= test_steps; ++step) {
    const tensor g = make_tensor(uniform(rng, test_n, -2, 2), s, t);
    const std::vector<double> rg = values(g);
    u->update(c.k, g, w, state.get());
    ref_tensors x{rw, rg, rs, round};
    c.ref(c.at(static_cast<std::uint64_t>(step)), x);
    ASSERT_EQ(st.count, static_cast<std::uint64_t>(step));
    const auto got_w = values(w);
    const auto got_s = slot_values(st);
    for (std::size_t i = 0; i < test_n; ++i) {
      ASSERT_NEAR(got_w[i], rw[i], tol * std::max(1.0, std::fabs(rw[i])))
          << "weight, step " << step << " element " << i;
      for (std::size_t j = 0; j < c.slots; ++j)
        ASSERT_NEAR(got_s[j][i], rs[j][i], tol * std::max(1.0, std::fabs(rs[j][i])))
            << "slot " << j << ", step " << step << " element " << i;
    }
  }
}

/// float16 / bfloat16: float32 slots; each update against the reference step from the stored
/// state, the weight within one unit in the last place of the 16-bit format (plus float error).
template <class W>
void check_16bit(const opt_case& c) {
  SCOPED_TRACE(c.name + " as " + to_string(dtype_of_v<W>));
  const dtype t = dtype_of_v<W>;
  const int digits = t == dtype::float16 ? 11 : 8;
  std::mt19937_64 rng(99);
  auto u = make(c.config());
  const shape s{static_cast<std::int64_t>(test_n)};
  tensor w = make_tensor(uniform(rng, test_n, -1, 1), s, t);
  auto state = u->make_state(c.k, w);
  optimizer_state& st = state_of(state);
  ASSERT_EQ(st.slots.size(), c.slots);
  for (const auto& slot : st.slots)
    EXPECT_EQ(slot.dtype(), dtype::float32);
  const std::function<double(double)> round = [t](double x) { return unit::stored_value(t, x); };
  for (int step = 1; step <= test_steps; ++step) {
    const tensor g = make_tensor(uniform(rng, test_n, -2, 2), s, t);
    std::vector<double> rw = values(w);
    const std::vector<double> before = rw, rg = values(g);
    std::vector<std::vector<double>> rs = slot_values(st);
    u->update(c.k, g, w, state.get());
    ref_tensors x{rw, rg, rs, round};
    c.ref(c.at(static_cast<std::uint64_t>(step)), x);
    const auto got_w = values(w);
    const auto got_s = slot_values(st);
    for (std::size_t i = 0; i < test_n; ++i) {
      const double mag = std::max(std::fabs(rw[i]), std::ldexp(1.0, -14));
      const double tol =
          unit::ulp_at(mag, digits) + 1e-5 * (std::fabs(before[i]) + std::fabs(rw[i]));
      ASSERT_NEAR(got_w[i], rw[i], tol) << "weight, step " << step << " element " << i;
      for (std::size_t j = 0; j < c.slots; ++j)
        ASSERT_NEAR(got_s[j][i], rs[j][i], 2e-5 * std::max(1.0, std::fabs(rs[j][i])))
            << "slot " << j << ", step " << step << " element " << i;
    }
  }
}

/// begin_update + update_range over three uneven ranges on three threads == update().
inline void check_ranges(const opt_case& c, dtype t) {
  SCOPED_TRACE(c.name + " as " + to_string(t));
  std::mt19937_64 rng(7);
  auto u = make(c.config());
  ASSERT_TRUE(u->element_wise());
  const std::size_t n = 1000;
  const shape s{static_cast<std::int64_t>(n)};
  tensor wa = make_tensor(uniform(rng, n, -1, 1), s, t);
  tensor wb = wa.copy();
  auto sa = u->make_state(c.k, wa), sb = u->make_state(c.k, wb);
  const std::size_t cuts[4] = {0, 37, 611, n};
  for (int step = 1; step <= 5; ++step) {
    const tensor g = make_tensor(uniform(rng, n, -2, 2), s, t);
    u->update(c.k, g, wa, sa.get());
    u->begin_update(c.k, sb.get());
    std::vector<std::thread> threads;
    for (int r = 2; r >= 0; --r)
      threads.emplace_back([&, r] { u->update_range(c.k, g, wb, sb.get(), cuts[r], cuts[r + 1]); });
    for (auto& th : threads)
      th.join();
    ASSERT_TRUE(same_bits(wa, wb)) << "weight, step " << step;
    const auto &a = state_of(sa), &b = state_of(sb);
    ASSERT_EQ(a.count, static_cast<std::uint64_t>(step));
    ASSERT_EQ(b.count, a.count);
    for (std::size_t j = 0; j < a.slots.size(); ++j)
      ASSERT_TRUE(same_bits(a.slots[j], b.slots[j])) << "slot " << j << ", step " << step;
  }
}

/// Lazy row updates (float32, weight 8 x 5). `dense_equal_elsewhere`: MXNet's lazy and dense
/// updates agree on the other rows too for this case (the dense update leaves a zero-gradient
/// row alone); otherwise the dense update must change some of them.
inline void check_lazy_rows(const opt_case& c, bool dense_equal_elsewhere) {
  SCOPED_TRACE(c.name);
  std::mt19937_64 rng(5);
  auto u = make(c.config());
  ASSERT_TRUE(u->lazy_rows());
  const std::size_t rows_n = 8, cols = 5, n = rows_n * cols;
  const shape s{static_cast<std::int64_t>(rows_n), static_cast<std::int64_t>(cols)};
  const dtype t = dtype::float32;
  tensor wl = make_tensor(uniform(rng, n, -1, 1), s, t);
  auto sl = u->make_state(c.k, wl);
  // Warm the state up with two dense updates, so slots are non-zero everywhere.
  for (int i = 0; i < 2; ++i)
    u->update(c.k, make_tensor(uniform(rng, n, -2, 2), s, t), wl, sl.get());
  // A dense copy of weight and state.
  tensor wd = wl.copy();
  auto sd = u->make_state(c.k, wd);
  state_of(sd).count = state_of(sl).count;
  for (std::size_t j = 0; j < state_of(sl).slots.size(); ++j)
    state_of(sl).slots[j].copy_to(state_of(sd).slots[j]);

  const std::vector<std::int64_t> rows{1, 4, 6};
  const std::vector<double> grow = uniform(rng, rows.size() * cols, -2, 2);
  const tensor g_rows = make_tensor(grow, shape{3, static_cast<std::int64_t>(cols)}, t);
  std::vector<double> dense(n, 0.0);
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < cols; ++j)
      dense[rows[i] * cols + j] = grow[i * cols + j];
  const tensor g_dense = make_tensor(dense, s, t);

  const auto w_before = values(wl);
  const auto s_before = slot_values(state_of(sl));
  const std::uint64_t count_before = state_of(sl).count;
  u->update_rows(c.k, rows.data(), rows.size(), g_rows, wl, sl.get());
  u->update(c.k, g_dense, wd, sd.get());
  EXPECT_EQ(state_of(sl).count, count_before + 1);

  const auto w_lazy = values(wl), w_dense = values(wd);
  const auto s_lazy = slot_values(state_of(sl)), s_dense = slot_values(state_of(sd));
  bool dense_changed_others = false;
  for (std::size_t r = 0; r < rows_n; ++r) {
    const bool given =
        std::find(rows.begin(), rows.end(), static_cast<std::int64_t>(r)) != rows.end();
    for (std::size_t j = 0; j < cols; ++j) {
      const std::size_t i = r * cols + j;
      if (given) {
        // The same per-element formula on the same inputs: identical results.
        EXPECT_EQ(w_lazy[i], w_dense[i]) << "row " << r;
        for (std::size_t k = 0; k < s_lazy.size(); ++k)
          EXPECT_EQ(s_lazy[k][i], s_dense[k][i]);
      } else {
        EXPECT_EQ(w_lazy[i], w_before[i]) << "untouched row " << r << " changed";
        for (std::size_t k = 0; k < s_lazy.size(); ++k)
          EXPECT_EQ(s_lazy[k][i], s_before[k][i]) << "slot " << k << " of untouched row " << r;
        bool differs = w_dense[i] != w_before[i];
        for (std::size_t k = 0; k < s_lazy.size(); ++k)
          differs |= s_dense[k][i] != s_before[k][i];
        dense_changed_others |= differs;
        if (dense_equal_elsewhere) {
          EXPECT_FALSE(differs) << "dense update changed row " << r;
        }
      }
    }
  }
  if (!dense_equal_elsewhere) {
    EXPECT_TRUE(dense_changed_others) << "lazy and dense semantics should differ here";
  }

  // Several lazy updates with changing row sets against the reference on those rows only.
  std::vector<double> rw = values(wl);
  std::vector<std::vector<double>> rs = slot_values(state_of(sl));
  const auto round = identity_rounding();
  const std::vector<std::vector<std::int64_t>> sets{
      {0}, {2, 3, 7}, {0, 1, 2, 3, 4, 5, 6, 7}, {5}, {}};
  for (const auto& set : sets) {
    const auto gv = uniform(rng, set.size() * cols, -2, 2);
    const tensor gt = make_tensor(
        gv, shape{static_cast<std::int64_t>(set.size()), static_cast<std::int64_t>(cols)}, t);
    u->update_rows(c.k, set.data(), set.size(), gt, wl, sl.get());
    const hyper h = c.at(state_of(sl).count);
    for (std::size_t i = 0; i < set.size(); ++i) {
      // The reference on one row: tensors of one row.
      std::vector<double> w_row(cols), g_row(gv.begin() + i * cols, gv.begin() + (i + 1) * cols);
      std::vector<std::vector<double>> s_row(rs.size(), std::vector<double>(cols));
      for (std::size_t j = 0; j < cols; ++j) {
        w_row[j] = rw[set[i] * cols + j];
        for (std::size_t k = 0; k < rs.size(); ++k)
          s_row[k][j] = rs[k][set[i] * cols + j];
      }
      ref_tensors x{w_row, g_row, s_row, round};
      c.ref(h, x);
      for (std::size_t j = 0; j < cols; ++j) {
        rw[set[i] * cols + j] = w_row[j];
        for (std::size_t k = 0; k < rs.size(); ++k)
          rs[k][set[i] * cols + j] = s_row[k][j];
      }
    }
    const auto got = values(wl);
    const auto got_s = slot_values(state_of(sl));
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_NEAR(got[i], rw[i], 2e-5 * std::max(1.0, std::fabs(rw[i]))) << "element " << i;
      for (std::size_t k = 0; k < rs.size(); ++k)
        ASSERT_NEAR(got_s[k][i], rs[k][i], 2e-5 * std::max(1.0, std::fabs(rs[k][i])));
    }
  }
}

/// Every check for one case.
inline void check_all(const opt_case& c, double tol32 = 2e-5) {
  check_free_running<float>(c, tol32);
  check_free_running<double>(c, 1e-11);
  check_16bit<float16>(c);
  check_16bit<bfloat16>(c);
}

}  // namespace kvactor::optref

// Reduction topologies: a "device" store merges several values through reducer actors wired
// as flat, tree, ring or a user's graph; every one gives the sum, in its own order.
#include <gtest/gtest.h>

#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::errc;
using kvactor::tensor;
using kvactor::topology;

namespace {

// Values whose sums are exact in float whatever the order: small integers.
std::vector<tensor> devices(std::size_t k, std::int64_t n, int round) {
  std::vector<tensor> v;
  for (std::size_t d = 0; d < k; ++d) {
    tensor t = tensor::zeros({n});
    for (std::int64_t i = 0; i < n; ++i)
      t.set(static_cast<std::size_t>(i), static_cast<double>((i % 7) + d * 3 + round));
    v.push_back(t);
  }
  return v;
}

double expected(std::size_t k, std::int64_t i, int round) {
  double s = 0;
  for (std::size_t d = 0; d < k; ++d)
    s += static_cast<double>((i % 7) + d * 3 + round);
  return s;
}

void check_topology(const topology& t) {
  kvactor::options o;
  o.reduction = std::make_shared<const topology>(t);
  o.parallel_threshold_bytes = 0;
  auto kv = kvactor::create("device", o);
  for (std::size_t k : {2u, 3u, 5u, 8u}) {
    const std::int64_t n = 1001;  // not a multiple of k: ring chunks differ in size
    const int key = static_cast<int>(k);
    kv.init(key, tensor::zeros({n})).get();
    for (int round = 0; round < 3; ++round) {
      std::vector<tensor> outs = {tensor::zeros({n}), tensor::zeros({n})};
      kv.pushpull(key, devices(k, n, round), outs).get();
      for (const auto& out : outs)
        for (std::int64_t i = 0; i < n; i += 97)
          ASSERT_EQ(out.at(static_cast<std::size_t>(i)), expected(k, i, round))
              << t.describe() << " k=" << k << " element " << i;
    }
  }
}

}  // namespace

TEST(Topology, Flat) {
  check_topology(topology::flat());
}
TEST(Topology, TreeFanIn2) {
  check_topology(topology::tree(2));
}
TEST(Topology, TreeFanIn3) {
  check_topology(topology::tree(3));
}
TEST(Topology, Ring) {
  check_topology(topology::ring());
}

TEST(Topology, UserWiredGraph) {
  // Slots 0,1 -> node a; slots 2,3 -> node b; a, b and slot 4 -> root.
  kvactor::reduction_graph g;
  const auto a = g.add_node(), b = g.add_node(), root = g.add_node();
  g.connect_slot(0, a);
  g.connect_slot(1, a);
  g.connect_slot(2, b);
  g.connect_slot(3, b);
  g.connect_slot(4, root);
  g.connect(a, root);
  g.connect(b, root);
  g.set_root(root);
  ASSERT_TRUE(g.validate(5).is_ok()) << g.validate(5).to_string();
  kvactor::options o;
  o.reduction = std::make_shared<const topology>(topology::custom(g));
  auto kv = kvactor::create("device", o);
  kv.init(1, tensor::zeros({64})).get();
  tensor out = tensor::zeros({64});
  kv.pushpull(1, devices(5, 64, 1), out).get();
  EXPECT_EQ(out.at(10), expected(5, 10, 1));
  // The graph serves five values; four are an error, and the store is unchanged.
  auto st = kv.push(1, devices(4, 64, 9)).get_status();
  EXPECT_EQ(st.code(), errc::invalid_argument) << st.to_string();
  EXPECT_NE(st.message().find("slot 4"), std::string::npos) << st.to_string();
  kv.pull(1, out).get();
  EXPECT_EQ(out.at(10), expected(5, 10, 1));
}

TEST(Topology, GraphValidation) {
  kvactor::reduction_graph g;
  EXPECT_EQ(g.validate(1).code(), errc::invalid_argument);
  const auto a = g.add_node(), b = g.add_node();
  g.connect_slot(0, a);
  g.connect(a, b);
  g.connect(b, a);  // a cycle
  g.set_root(b);
  auto s = g.validate(1);
  EXPECT_EQ(s.code(), errc::invalid_argument);
  kvactor::reduction_graph h;
  const auto r = h.add_node();
  h.connect_slot(0, r);
  h.connect_slot(0, r);
  h.set_root(r);
  EXPECT_NE(h.validate(1).message().find("two nodes"), std::string::npos);
  EXPECT_THROW(topology::tree(1), kvactor::error);
  EXPECT_EQ(topology::tree(4).describe(), "tree(4)");
}

TEST(Topology, BrokenGraphIsRefusedAtCreate) {
  kvactor::reduction_graph g;
  const auto a = g.add_node(), root = g.add_node();
  g.connect_slot(0, a);
  g.connect_slot(1, root);  // node a feeds nothing and is not the root
  g.set_root(root);
  EXPECT_EQ(g.num_slots(), 2u);
  kvactor::options o;
  o.reduction = std::make_shared<const topology>(topology::custom(g));
  try {
    auto kv = kvactor::create("device", o);
    FAIL() << "a graph with a dangling node was accepted";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string{e.what()}.find("node 0 feeds nothing"), std::string::npos) << e.what();
  }
}

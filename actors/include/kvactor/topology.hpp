// Reduction topologies: how the values a push gives for several devices are reduced to one,
// as graphs of reducer actors. A store created with a topology (options::reduction) runs its
// multi-device merges through it.
//
//   flat:    every device's value goes to one reducer, which sums them all.
//   tree(f): reducers sum groups of f inputs, their sums again in groups of f, up to a root;
//            the summation order follows the tree.
//   ring:    each of d ring members owns 1/d of the array; partial sums travel around the ring
//            (reduce-scatter), so every member sums d values of its chunk.
//   custom:  a user-wired graph of reducer nodes (reduction_graph).
//
// Each reducer node is an actor; a merge is a job that flows through the graph, so merges of
// different keys overlap. On CPU values every node sums on the CPU; the device layer runs the
// same graph on GPU streams.
// Thread-safety: topology and reduction_graph are values; build them on one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "kvactor/result.hpp"

namespace kvactor {

/// A user-wired reduction: reducer nodes, each summing its inputs — device slots (the i-th
/// value of a push) or other nodes' sums — and one root whose sum is the merged value. Every
/// slot must feed exactly one node, every node but the root exactly one other node, and there
/// may be no cycle.
class reduction_graph {
 public:
  /// A new reducer node; returns its id.
  std::size_t add_node();
  /// The value of device slot `slot` is an input of `node`.
  void connect_slot(std::size_t slot, std::size_t node);
  /// The sum of node `from` is an input of node `to`.
  void connect(std::size_t from, std::size_t to);
  void set_root(std::size_t node);

  std::size_t num_nodes() const noexcept { return nodes_; }
  /// One more than the highest device slot wired: the number of values a push must give.
  std::size_t num_slots() const noexcept;
  /// invalid_argument naming what is wrong, for `slots` device values.
  status validate(std::size_t slots) const;

  struct edge {
    bool from_slot;
    std::size_t from;
    std::size_t to;
  };
  const std::vector<edge>& edges() const noexcept { return edges_; }
  std::size_t root() const noexcept { return root_; }

 private:
  std::size_t nodes_ = 0;
  std::size_t root_ = static_cast<std::size_t>(-1);
  std::vector<edge> edges_;
};

class topology {
 public:
  enum class kind { flat, tree, ring, custom };

  static topology flat() { return topology{kind::flat, 0, {}}; }
  /// fan_in >= 2.
  static topology tree(std::size_t fan_in = 2);
  static topology ring() { return topology{kind::ring, 0, {}}; }
  static topology custom(reduction_graph g);

  kind type() const noexcept { return kind_; }
  std::size_t fan_in() const noexcept { return fan_in_; }
  const reduction_graph& graph() const noexcept { return graph_; }
  /// "flat", "tree(4)", "ring", "custom(5 nodes)"
  std::string describe() const;

  /// The reducer graph this topology builds for `slots` device values (flat and tree; ring
  /// and custom have their own shape). invalid_argument when it cannot serve that many.
  result<reduction_graph> graph_for(std::size_t slots) const;

 private:
  topology(kind k, std::size_t f, reduction_graph g) : kind_(k), fan_in_(f), graph_(std::move(g)) {}
  kind kind_;
  std::size_t fan_in_;
  reduction_graph graph_;
};

}  // namespace kvactor

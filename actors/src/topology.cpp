#include "kvactor/topology.hpp"

#include <algorithm>

namespace kvactor {

std::size_t reduction_graph::add_node() {
  return nodes_++;
}

void reduction_graph::connect_slot(std::size_t slot, std::size_t node) {
  edges_.push_back(edge{true, slot, node});
}

void reduction_graph::connect(std::size_t from, std::size_t to) {
  edges_.push_back(edge{false, from, to});
}

void reduction_graph::set_root(std::size_t node) {
  root_ = node;
}

std::size_t reduction_graph::num_slots() const noexcept {
  std::size_t n = 0;
  for (const auto& e : edges_)
    if (e.from_slot) n = std::max(n, e.from + 1);
  return n;
}

status reduction_graph::validate(std::size_t slots) const {
  auto bad = [](const std::string& what) {
    return status{errc::invalid_argument, "reduction graph: " + what};
  };
  if (nodes_ == 0) return bad("no reducer nodes");
  if (root_ >= nodes_) return bad("no root node set");
  std::vector<int> slot_used(slots, 0), node_out(nodes_, 0), node_in(nodes_, 0);
  std::vector<std::size_t> parent(nodes_, nodes_);
  for (const auto& e : edges_) {
    if (e.to >= nodes_) return bad("edge to unknown node " + std::to_string(e.to));
    if (e.from_slot) {
      if (e.from >= slots)
        return bad("slot " + std::to_string(e.from) + " is wired but there are only " +
                   std::to_string(slots) + " values");
      if (slot_used[e.from]++) return bad("slot " + std::to_string(e.from) + " feeds two nodes");
    } else {
      if (e.from >= nodes_) return bad("edge from unknown node " + std::to_string(e.from));
      if (e.from == e.to) return bad("node " + std::to_string(e.from) + " feeds itself");
      if (node_out[e.from]++) return bad("node " + std::to_string(e.from) + " feeds two nodes");
      parent[e.from] = e.to;
    }
    ++node_in[e.to];
  }
  for (std::size_t s = 0; s < slots; ++s)
    if (!slot_used[s]) return bad("slot " + std::to_string(s) + " feeds no node");
  for (std::size_t n = 0; n < nodes_; ++n) {
    if (n == root_ && node_out[n]) return bad("the root feeds another node");
    if (n != root_ && !node_out[n]) return bad("node " + std::to_string(n) + " feeds nothing");
    if (!node_in[n]) return bad("node " + std::to_string(n) + " has no inputs");
    // Following parents from any node must reach the root without a cycle.
    std::size_t at = n, steps = 0;
    while (at != root_) {
      at = parent[at];
      if (at >= nodes_ || ++steps > nodes_)
        return bad("node " + std::to_string(n) + " is on a cycle");
    }
  }
  return {};
}

topology topology::tree(std::size_t fan_in) {
  if (fan_in < 2) throw error{errc::invalid_argument, "tree topology: fan-in must be >= 2"};
  return topology{kind::tree, fan_in, {}};
}

topology topology::custom(reduction_graph g) {
  return topology{kind::custom, 0, std::move(g)};
}

std::string topology::describe() const {
  switch (kind_) {
    case kind::flat:
      return "flat";
    case kind::tree:
      return "tree(" + std::to_string(fan_in_) + ")";
    case kind::ring:
      return "ring";
    case kind::custom:
      return "custom(" + std::to_string(graph_.num_nodes()) + " nodes)";
  }
  return "?";
}

result<reduction_graph> topology::graph_for(std::size_t slots) const {
  if (slots == 0) return status{errc::invalid_argument, "a reduction needs at least one value"};
  reduction_graph g;
  switch (kind_) {
    case kind::flat: {
      const auto root = g.add_node();
      for (std::size_t s = 0; s < slots; ++s)
        g.connect_slot(s, root);
      g.set_root(root);
      return g;
    }
    case kind::tree: {
      // Level 0 groups the slots; each further level groups the previous level's nodes.
      std::vector<std::size_t> level;
      for (std::size_t s = 0; s < slots; s += fan_in_) {
        const auto n = g.add_node();
        for (std::size_t i = s; i < std::min(slots, s + fan_in_); ++i)
          g.connect_slot(i, n);
        level.push_back(n);
      }
      while (level.size() > 1) {
        std::vector<std::size_t> next;
        for (std::size_t i = 0; i < level.size(); i += fan_in_) {
          const auto n = g.add_node();
          for (std::size_t j = i; j < std::min(level.size(), i + fan_in_); ++j)
            g.connect(level[j], n);
          next.push_back(n);
        }
        level.swap(next);
      }
      g.set_root(level.front());
      return g;
    }
    case kind::custom: {
      if (auto s = graph_.validate(slots); !s) return s;
      return graph_;
    }
    case kind::ring:
      break;
  }
  return status{errc::invalid_argument, "a ring has no reducer tree"};
}

}  // namespace kvactor

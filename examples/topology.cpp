// Composing a reduction topology: a store whose multi-device merges run through reducer
// actors the user wires. Eight "devices" sit in two groups of four (think: two PCIe switches);
// each group sums locally, then one root sums the two group sums.
#include <iostream>
#include <vector>

#include "kvactor/kvstore.hpp"
#include "kvactor/topology.hpp"

using kvactor::tensor;

int main() {
  constexpr std::size_t devices = 8;
  const kvactor::shape shape{1024};

  kvactor::reduction_graph g;
  const std::size_t left = g.add_node(), right = g.add_node(), root = g.add_node();
  for (std::size_t d = 0; d < devices; ++d)
    g.connect_slot(d, d < devices / 2 ? left : right);
  g.connect(left, root);
  g.connect(right, root);
  g.set_root(root);
  // A graph that cannot serve the pushes it will get is refused before the store exists.
  if (auto st = g.validate(devices); !st.is_ok()) {
    std::cerr << "bad graph: " << st.to_string() << '\n';
    return 1;
  }

  // The built-in shapes are one line each; they are compared below on the same data.
  const std::vector<kvactor::topology> shapes = {
      kvactor::topology::custom(g), kvactor::topology::flat(), kvactor::topology::tree(2),
      kvactor::topology::ring()};
  int wrong = 0;
  for (const auto& t : shapes) {
    kvactor::options o;
    o.reduction = std::make_shared<const kvactor::topology>(t);
    auto kv = kvactor::create("device", o);
    kv.init(0, tensor::zeros(shape)).get();

    std::vector<tensor> grads;
    for (std::size_t d = 0; d < devices; ++d)
      grads.push_back(tensor::full(shape, static_cast<double>(d + 1)));
    tensor out = tensor::zeros(shape);
    kv.pushpull(0, grads, out).get();
    std::cout << t.describe() << ": out[0] = " << out.at(0) << ", out[1023] = " << out.at(1023)
              << " (expected " << devices * (devices + 1) / 2 << ")\n";
    wrong += out.at(0) != devices * (devices + 1) / 2 || out.at(1023) != out.at(0);
  }

  // Seven values for an eight-slot graph: a typed error, and the store keeps its value.
  kvactor::options o;
  o.reduction = std::make_shared<const kvactor::topology>(kvactor::topology::custom(g));
  auto kv = kvactor::create("device", o);
  kv.init(0, tensor::zeros(shape)).get();
  try {
    kv.push(0, std::vector<tensor>(devices - 1, tensor::ones(shape))).get();
  } catch (const kvactor::error& e) {
    std::cout << "7 values: " << kvactor::to_string(e.code()) << ": " << e.message() << '\n';
  }
  tensor kept = tensor::ones(shape);
  kv.pull(0, kept).get();
  std::cout << "after the refused push: out[0] = " << kept.at(0) << '\n';
  return wrong == 0 && kept.at(0) == 0 ? 0 : 1;
}

#include "reduction.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>

#include "caf_glue.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_ops.hpp"
#include "kvactor/detail/kernels.hpp"
#include "kvactor/detail/thread_pool.hpp"

namespace kvactor::detail {
namespace {

// One merge in flight. Each node's slot of `inputs` is touched only by that node's actor.
struct job {
  std::vector<tensor> values;
  tensor target;
  std::function<void(status)> done;
  std::atomic<bool> finished{false};
  device root_device;  // where the root sums device values
  std::size_t hint = 0;
  stream_priority prio = stream_priority::normal;
  /// Calls done once, whichever node gets there first (several may fail).
  void finish(const status& s) {
    if (!finished.exchange(true)) done(s);
  }
  std::vector<std::vector<tensor>> inputs;  // per node: what has arrived
  std::atomic<std::size_t> chunks_left{0};  // ring
};
using job_ptr = std::shared_ptr<job>;

// The graph a node belongs to, shared by its actors.
struct plan {
  reduction_graph g;
  std::vector<std::size_t> need;    // inputs per node
  std::vector<std::size_t> parent;  // node -> node (root: none)
  std::vector<caf::actor> nodes;
};
using plan_ptr = std::shared_ptr<const plan>;

struct input_msg {
  job_ptr j;
  plan_ptr p;
  std::size_t node;
  tensor value;
};

struct ring_msg {
  job_ptr j;
  std::shared_ptr<const std::vector<caf::actor>> members;
  std::size_t chunk;  // which chunk this partial sums
  std::size_t hops;   // values added so far
  tensor partial;     // chunk-sized
};

}  // namespace
}  // namespace kvactor::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::input_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::ring_msg)

namespace kvactor::detail {
namespace {

void sum_tensors(const std::vector<tensor>& in, tensor& out) {
  std::vector<const void*> srcs;
  srcs.reserve(in.size());
  for (const auto& t : in)
    srcs.push_back(t.data_unchecked());
  kernels::sum(out.dtype(), out.data_unchecked(), srcs.data(), srcs.size(), 0, out.size());
}

// A node's sum of device values: the inputs not on the node's device are copied there (peer
// or staged), summed by one fused kernel, and the sum goes to the parent or (root) into the
// target, all on one stream; its completion callback passes the result on.
void device_sum(const input_msg& m, std::vector<tensor> in, bool root) {
  const job& j = *m.j;
  // A node sums on its first input that is on a device; the root on the merge device.
  const auto on_dev =
      std::find_if(in.begin(), in.end(), [](const tensor& t) { return !t.device().is_cpu(); });
  const device d = root ? j.root_device : on_dev->device();
  const tensor& first = in.front();
  const std::size_t bytes = first.nbytes();
  const auto s = get_stream(d, j.prio, j.hint);
  tensor out =
      (root && j.target.device() == d) ? j.target : tensor::empty(first.shape(), first.dtype(), d);
  std::vector<tensor> keep = sum_on_device_async(s, in, out);
  keep.insert(keep.end(), in.begin(), in.end());
  if (root && j.target.device() != d)
    device_kernels::copy_async(s, j.target.data_unchecked(), j.target.device(),
                               out.data_unchecked(), d, bytes);
  keep.push_back(out);
  enqueue_callback(s, [m, root, out, keep = std::move(keep)](const status& st) {
    if (!st.is_ok()) return m.j->finish(st);
    if (root) return m.j->finish(status{});
    const auto up = m.p->parent[m.node];
    caf::anon_send(m.p->nodes[up], input_msg{m.j, m.p, up, out});
  });
}

// A reducer node: collects its inputs for a job, sums them, and passes the sum on (to its
// parent, or into the target at the root).
caf::behavior reducer(caf::event_based_actor*, int) {
  return {[](const input_msg& m) {
    auto& mine = m.j->inputs[m.node];
    mine.push_back(m.value);
    if (mine.size() < m.p->need[m.node]) return;
    const bool root = m.node == m.p->g.root();
    const bool any_on_device =
        std::any_of(mine.begin(), mine.end(), [](const tensor& t) { return !t.device().is_cpu(); });
    if (any_on_device || (root && !m.j->target.device().is_cpu())) {
      try {
        device_sum(m, std::move(mine), root);
      } catch (const std::exception& e) {
        m.j->finish(status{errc::internal, std::string{"reduction on the device: "} + e.what()});
      }
      mine.clear();
      return;
    }
    try {
      tensor out = root ? m.j->target : tensor::empty(m.j->target.shape(), m.j->target.dtype());
      sum_tensors(mine, out);
      mine.clear();
      if (root) {
        m.j->finish(status{});
        return;
      }
      const auto up = m.p->parent[m.node];
      caf::anon_send(m.p->nodes[up], input_msg{m.j, m.p, up, std::move(out)});
    } catch (const std::exception& e) {
      m.j->finish(status{errc::internal, std::string{"reduction: "} + e.what()});
    }
  }};
}

// A ring member: adds its own value's part of the chunk passing by, and passes it on; the
// member that owns the chunk adds last and writes it into the target.
caf::behavior ring_member(caf::event_based_actor*, std::size_t me) {
  return {[me](ring_msg& m) {
    const std::size_t k = m.j->values.size(), n = m.j->target.size();
    const dtype t = m.j->target.dtype();
    std::size_t b, e;
    split_range(n, k, m.chunk, b, e);
    const std::size_t w = size_of(t);
    const void* mine = static_cast<const char*>(m.j->values[me].data_unchecked()) + b * w;
    if (!m.partial.defined()) {
      m.partial = tensor::empty({static_cast<std::int64_t>(std::max<std::size_t>(e - b, 1))}, t);
      kernels::copy(t, m.partial.data_unchecked(), mine, 0, e - b);
    } else {
      kernels::accumulate(t, m.partial.data_unchecked(), mine, 0, e - b);
    }
    if (++m.hops < k) {
      const auto next = (me + 1) % k;
      caf::anon_send((*m.members)[next], std::move(m));
      return;
    }
    kernels::copy(t, static_cast<char*>(m.j->target.data_unchecked()) + b * w,
                  m.partial.data_unchecked(), 0, e - b);
    if (m.j->chunks_left.fetch_sub(1) == 1) m.j->finish(status{});
  }};
}

}  // namespace

struct reduction_engine::impl {
  caf::actor_system& sys;
  topology shape;
  std::mutex mu;
  std::map<std::size_t, plan_ptr> plans;  // by number of values
  std::map<std::size_t, std::shared_ptr<const std::vector<caf::actor>>> rings;
  std::vector<caf::actor> all;               // every actor spawned, for shutdown
  std::map<std::int64_t, device> placement;  // key -> merge device
  std::map<int, std::size_t> placed_bytes;   // device index -> bytes of keys placed there

  device place(std::int64_t key, const std::vector<tensor>& values) {
    std::lock_guard<std::mutex> g(mu);
    if (key >= 0)
      if (auto it = placement.find(key); it != placement.end()) return it->second;
    device best = values.front().device();
    for (const auto& v : values)
      if (!v.device().is_cpu() && placed_bytes[v.device().index()] < placed_bytes[best.index()])
        best = v.device();
    placed_bytes[best.index()] += values.front().nbytes();
    if (key >= 0) placement.emplace(key, best);
    return best;
  }

  impl(caf::actor_system& s, topology t) : sys(s), shape(std::move(t)) {}

  result<plan_ptr> plan_for(std::size_t k) {
    std::lock_guard<std::mutex> g(mu);
    auto it = plans.find(k);
    if (it != plans.end()) return it->second;
    auto graph = shape.graph_for(k);
    if (!graph) return graph.error();
    auto p = std::make_shared<plan>();
    p->g = std::move(*graph);
    p->need.assign(p->g.num_nodes(), 0);
    p->parent.assign(p->g.num_nodes(), p->g.num_nodes());
    for (const auto& e : p->g.edges()) {
      ++p->need[e.to];
      if (!e.from_slot) p->parent[e.from] = e.to;
    }
    for (std::size_t n = 0; n < p->g.num_nodes(); ++n) {
      p->nodes.push_back(sys.spawn(reducer, 0));
      all.push_back(p->nodes.back());
    }
    plans.emplace(k, p);
    return plan_ptr{p};
  }

  std::shared_ptr<const std::vector<caf::actor>> ring_for(std::size_t k) {
    std::lock_guard<std::mutex> g(mu);
    auto it = rings.find(k);
    if (it != rings.end()) return it->second;
    auto members = std::make_shared<std::vector<caf::actor>>();
    for (std::size_t i = 0; i < k; ++i) {
      members->push_back(sys.spawn(ring_member, i));
      all.push_back(members->back());
    }
    rings.emplace(k, members);
    return members;
  }
};

reduction_engine::reduction_engine(caf::actor_system& sys, topology t)
    : impl_(std::make_unique<impl>(sys, std::move(t))) {}

reduction_engine::~reduction_engine() {
  shutdown();
}

const topology& reduction_engine::shape() const noexcept {
  return impl_->shape;
}

void reduction_engine::reduce(std::vector<tensor> values, tensor target,
                              std::function<void(status)> done, std::int64_t key, int priority) {
  const std::size_t k = values.size();
  auto j = std::make_shared<job>();
  const bool device_target = !target.device().is_cpu();
  if (k && (device_target || !values.front().device().is_cpu())) {
    // A target on a device (a key that lives there) fixes the merge device.
    j->root_device = device_target ? target.device() : impl_->place(key, values);
    j->hint = static_cast<std::size_t>(key < 0 ? 0 : key);
    j->prio = priority > 0 ? stream_priority::high : stream_priority::normal;
  }
  j->values = std::move(values);
  j->target = std::move(target);
  j->done = std::move(done);
  if (impl_->shape.type() == topology::kind::ring) {
    auto members = impl_->ring_for(k);
    j->chunks_left = k;
    // The partial of chunk c starts at member c + 1 and ends at member c, its owner.
    for (std::size_t c = 0; c < k; ++c)
      caf::anon_send((*members)[(c + 1) % k], ring_msg{j, members, c, 0, tensor{}});
    return;
  }
  auto p = impl_->plan_for(k);
  if (!p) return j->finish(p.error());
  j->inputs.resize((*p)->g.num_nodes());
  for (const auto& e : (*p)->g.edges())
    if (e.from_slot) caf::anon_send((*p)->nodes[e.to], input_msg{j, *p, e.to, j->values[e.from]});
}

device reduction_engine::merge_device(std::int64_t key) const {
  std::lock_guard<std::mutex> g(impl_->mu);
  auto it = impl_->placement.find(key);
  return it == impl_->placement.end() ? device::cpu() : it->second;
}

void reduction_engine::shutdown() {
  std::vector<caf::actor> all;
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    all.swap(impl_->all);
    impl_->plans.clear();
    impl_->rings.clear();
  }
  if (all.empty()) return;
  for (auto& a : all)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::scoped_actor self{impl_->sys};
  self->wait_for(all);
}

}  // namespace kvactor::detail

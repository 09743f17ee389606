#include "rank_binding.hpp"

#include <algorithm>

#include "kvactor/net/handshake.hpp"

namespace kvactor::detail {

namespace hs = net::handshake;

result<std::string> new_rank_key() {
  auto n = hs::random_nonce();
  if (!n) return n.error();
  return std::string(n->begin(), n->end());
}

result<std::string> rank_token(const std::string& key, const std::string& cluster_id,
                               std::int64_t rank) {
  // The handshake's HMAC-SHA256 under the job's key (never the secret), with a role no node
  // has, so a token is never a handshake MAC.
  const hs::nonce none{};
  auto m = hs::hello_mac(key, cluster_id, "rank-token", rank, none, none);
  if (!m) return m.error();
  return std::string(m->begin(), m->end());
}

void rank_binding::claim(const void* conn, std::int64_t rank, std::string token,
                         std::function<void(const status&)> answer) {
  status s;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (key_.empty()) {
      waiting_.push_back(pending{conn, rank, std::move(token), std::move(answer)});
      return;
    }
    s = decide_locked(conn, rank, token);
  }
  answer(s);
}

void rank_binding::set_key(std::string key) {
  std::vector<std::pair<std::function<void(const status&)>, status>> answers;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!key_.empty() || key.empty()) return;
    key_ = std::move(key);
    for (auto& p : waiting_)
      answers.emplace_back(std::move(p.answer), decide_locked(p.conn, p.rank, p.token));
    waiting_.clear();
  }
  for (auto& [answer, s] : answers)
    answer(s);
}

status rank_binding::decide_locked(const void* conn, std::int64_t rank, const std::string& token) {
  const std::string who = "worker " + std::to_string(rank);
  if (bound_.count(conn))
    return status{errc::unauthenticated, "this connection is bound to a rank already"};
  auto expected = rank_token(key_, cluster_id_, rank);
  if (!expected) return expected.error();
  hs::mac a{}, b{};
  if (rank < 0 || token.size() != a.size())
    return status{errc::unauthenticated, who + ": no valid rank token"};
  std::copy(token.begin(), token.end(), a.begin());
  std::copy(expected->begin(), expected->end(), b.begin());
  if (!hs::equal(a, b))
    return status{errc::unauthenticated,
                  who + ": the rank token is not the one the scheduler gave that worker"};
  if (!spent_.insert(rank).second)
    return status{errc::unauthenticated, who + " is bound to another connection already"};
  bound_.emplace(conn, rank);
  return {};
}

std::int64_t rank_binding::rank_of(const void* conn) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = bound_.find(conn);
  return it == bound_.end() ? -1 : it->second;
}

void rank_binding::forget(const void* conn) {
  std::lock_guard<std::mutex> g(mu_);
  bound_.erase(conn);
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                [conn](const pending& p) { return p.conn == conn; }),
                 waiting_.end());
}

}  // namespace kvactor::detail

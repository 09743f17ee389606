// Worker ranks bound to connections (rank_binding, no sockets): only the scheduler's token
// binds a rank, each rank binds once, and claims made before the key arrives wait for it.
#include <gtest/gtest.h>

#include "dist/rank_binding.hpp"

namespace kvactor::detail {
namespace {

struct answers {
  std::vector<status> got;
  std::function<void(const status&)> sink() {
    return [this](const status& s) { got.push_back(s); };
  }
};

TEST(RankBinding, TheSchedulersTokenBindsItsRankOnce) {
  auto key = new_rank_key();
  ASSERT_TRUE(key.has_value());
  ASSERT_EQ(key->size(), 32u);
  rank_binding b("job");
  b.set_key(*key);
  int honest = 0, thief = 0, other = 0;
  answers a;
  b.claim(&honest, 0, *rank_token(*key, "job", 0), a.sink());
  ASSERT_EQ(a.got.size(), 1u);
  EXPECT_TRUE(a.got[0].is_ok()) << a.got[0].to_string();
  EXPECT_EQ(b.rank_of(&honest), 0);
  // The same token again, from another connection: the rank is taken.
  b.claim(&thief, 0, *rank_token(*key, "job", 0), a.sink());
  EXPECT_EQ(a.got[1].code(), errc::unauthenticated);
  EXPECT_NE(a.got[1].message().find("bound to another connection"), std::string::npos);
  EXPECT_EQ(b.rank_of(&thief), -1);
  // Another rank's token, another cluster's, or a forged one bind nothing.
  b.claim(&other, 1, *rank_token(*key, "job", 2), a.sink());
  b.claim(&other, 1, *rank_token(*key, "other-job", 1), a.sink());
  b.claim(&other, 1, std::string(32, 'x'), a.sink());
  b.claim(&other, 1, "short", a.sink());
  for (std::size_t i = 2; i < 6; ++i)
    EXPECT_EQ(a.got[i].code(), errc::unauthenticated) << i;
  EXPECT_EQ(b.rank_of(&other), -1);
  b.claim(&other, 1, *rank_token(*key, "job", 1), a.sink());
  EXPECT_TRUE(a.got[6].is_ok());
  // A closed connection's rank stays spent.
  b.forget(&honest);
  EXPECT_EQ(b.rank_of(&honest), -1);
  b.claim(&thief, 0, *rank_token(*key, "job", 0), a.sink());
  EXPECT_EQ(a.got[7].code(), errc::unauthenticated);
}

TEST(RankBinding, ClaimsBeforeTheKeyWaitForIt) {
  auto key = new_rank_key();
  ASSERT_TRUE(key.has_value());
  rank_binding b("job");
  int c0 = 0, c1 = 0, gone = 0;
  answers a;
  b.claim(&c0, 0, *rank_token(*key, "job", 0), a.sink());
  b.claim(&c1, 1, std::string(32, 'x'), a.sink());
  b.claim(&gone, 2, *rank_token(*key, "job", 2), a.sink());
  b.forget(&gone);
  EXPECT_TRUE(a.got.empty());
  EXPECT_EQ(b.rank_of(&c0), -1);
  b.set_key(*key);
  ASSERT_EQ(a.got.size(), 2u);
  EXPECT_TRUE(a.got[0].is_ok());
  EXPECT_EQ(a.got[1].code(), errc::unauthenticated);
  EXPECT_EQ(b.rank_of(&c0), 0);
  EXPECT_NE(*rank_token(*key, "job", 0), *rank_token(*new_rank_key(), "job", 0));
}

}  // namespace
}  // namespace kvactor::detail

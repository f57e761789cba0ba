// CompareSnapshots: what the failover drill counts as lost or changed.
#include "cli/drill.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace lockwarden::cli {
namespace {

v1::Lock MakeLock(uint64_t token, const std::string& client, const std::string& fh,
                  const std::string& gateway = "gw-a") {
  v1::Lock l;
  l.set_fencing_token(token);
  l.set_file_handle(fh);
  l.mutable_owner()->set_client_name(client);
  l.mutable_owner()->set_svid(7);
  l.mutable_range()->set_length(10);
  l.set_exclusive(true);
  l.set_gateway_id(gateway);
  return l;
}

v1::Waiter WaiterFor(const v1::Lock& l) {
  v1::Waiter w;
  w.set_file_handle(l.file_handle());
  *w.mutable_owner() = l.owner();
  *w.mutable_range() = l.range();
  w.set_exclusive(l.exclusive());
  w.set_gateway_id(l.gateway_id());
  return w;
}

StateSnapshot Base() {
  StateSnapshot s;
  s.locks = {MakeLock(1, "c1", "f1"), MakeLock(2, "c2", "f2")};
  s.waiters = {WaiterFor(MakeLock(0, "c3", "f1"))};
  s.gateways["gw-a"].set_gateway_id("gw-a");
  s.gateways["gw-a"].set_nsm_state(3);
  s.client_states = {{"c1", 1}, {"c2", 5}};
  return s;
}

TEST(DrillCompareTest, IdenticalStateHasNoFindings) {
  const DrillComparison c = CompareSnapshots(Base(), Base());
  EXPECT_TRUE(c.findings.empty());
  EXPECT_EQ(c.locks_before, 2u);
  EXPECT_EQ(c.waiters_after, 1u);
  EXPECT_EQ(c.gateways_checked, 1u);
  EXPECT_EQ(c.clients_checked, 2u);
}

TEST(DrillCompareTest, LostLockChangedTokenAndStateNumbersAreFindings) {
  StateSnapshot after = Base();
  after.locks[0].set_fencing_token(99);  // Same lock, other token: not the same lock.
  after.locks.pop_back();
  after.gateways["gw-a"].set_nsm_state(5);
  after.gateways["gw-a"].set_in_grace(true);
  after.client_states["c2"] = 7;
  const DrillComparison c = CompareSnapshots(Base(), after);
  std::multiset<std::string> kinds;
  for (const DrillFinding& f : c.findings) kinds.insert(f.kind);
  EXPECT_EQ(kinds.count("lock_lost"), 2u);
  EXPECT_EQ(kinds.count("gateway_state_changed"), 1u);
  EXPECT_EQ(kinds.count("grace_started"), 1u);
  EXPECT_EQ(kinds.count("client_state_changed"), 1u);
}

TEST(DrillCompareTest, WaiterGrantedMeanwhileIsNotLostButAVanishedOneIs) {
  StateSnapshot after = Base();
  after.waiters.clear();
  after.locks.push_back(MakeLock(3, "c3", "f1"));
  DrillComparison c = CompareSnapshots(Base(), after);
  EXPECT_TRUE(c.findings.empty());
  EXPECT_EQ(c.waiters_granted, 1u);
  after.locks.pop_back();
  c = CompareSnapshots(Base(), after);
  ASSERT_EQ(c.findings.size(), 1u);
  EXPECT_EQ(c.findings[0].kind, "waiter_lost");
}

TEST(DrillCompareTest, TheDrillsOwnProbeStateIsIgnored) {
  StateSnapshot before = Base();
  before.locks.push_back(MakeLock(4, kProbeClient, kProbeFileHandle, kDrillGatewayId));
  before.gateways[kDrillGatewayId].set_nsm_state(1);
  StateSnapshot after = Base();
  const DrillComparison c = CompareSnapshots(before, after);
  EXPECT_TRUE(c.findings.empty());
  EXPECT_EQ(c.locks_before, 2u);
}

}  // namespace
}  // namespace lockwarden::cli

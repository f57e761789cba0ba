// Measurement, not a pass/fail test of timing (tagged manual): how the
// standbys' health probes behave while the leader is loaded. A 3-server
// cluster (1-member etcd) takes gRPC traffic at 32 lanes (maximal for
// this 2-core VM) for kLoadSeconds; the standbys' failed probes and
// suspicions (leader_suspected: a depose attempt) and the leader changes are
// counted, once with count-only detection (--probe-min-unresponsive-ms=0)
// and once with the defaults. Prints one line per configuration; the only
// assertion is that no history checker ran (none needed: fencing keeps a
// spurious failover safe) and that the cluster ends with a leader.
//
//   bazel test //tests/failover:probe_load_test --test_output=streamed
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/common/server_process.h"
#include "tests/common/stubs.h"
#include "tests/crash/traffic.h"
#include "tests/failover/ha_cluster.h"

namespace lockwarden::crash {
namespace {

using ::lockwarden::testing::HaCluster;
using ::lockwarden::testing::HaClusterOptions;

constexpr absl::Duration kLoad = absl::Seconds(20);
constexpr int kLanes = 32;

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

void Measure(const std::string& label, const std::vector<std::string>& flags) {
  HaClusterOptions options;
  options.etcd_members = 1;
  options.extra_args = flags;
  auto cluster = HaCluster::Start(options);
  ASSERT_THAT(cluster, testing::IsOk());
  absl::StatusOr<int> leader = (*cluster)->WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(leader, testing::IsOk());
  absl::SleepFor(absl::Seconds(1));
  testing::RequestIdGenerator ids("probe-load");
  TrafficOptions t;
  t.lanes = kLanes;
  t.ops_per_lane_max = 1'000'000;
  t.rpc_timeout = absl::Seconds(2);
  // The lanes follow no redirect: after a spurious failover they talk to
  // a standby and stop; what is counted is the standbys' view.
  HaCluster* c = cluster->get();
  const int l = *leader;
  Traffic traffic(t, 1, [c, l] { return c->Channel(l); }, &ids);
  traffic.Start();
  absl::SleepFor(kLoad);
  traffic.Stop();
  const History history = traffic.TakeHistory();
  size_t acked = 0;
  for (const Op& op : history) acked += op.acked ? 1 : 0;
  int suspected = 0, failing = 0, lost = 0;
  for (int i = 0; i < c->size(); ++i) {
    const std::string log = c->LogTail(i, 64 << 20);
    suspected += Count(log, "leader_suspected");
    failing += Count(log, "leader_probe_failing");
    lost += Count(log, "election_lost");
  }
  std::printf("%s: %zu ops acknowledged in %s (%.0f/s), probe failure runs %d, "
              "suspicions (depose attempts) %d, leaderships lost %d\n",
              label.c_str(), acked, absl::FormatDuration(kLoad).c_str(),
              acked / absl::ToDoubleSeconds(kLoad), failing, suspected, lost);
  std::fflush(stdout);
  EXPECT_THAT(c->WaitForLeader(testing::kLeaderWaitMax), testing::IsOk());
}

TEST(ProbeLoadTest, CountOnlyVersusMinimumUnresponsiveSpan) {
  Measure("count-only (3 x 200 ms)", {"--probe-min-unresponsive-ms=0"});
  Measure("defaults (3 failures, timeouts spanning >= 1 s)", {});
}

}  // namespace
}  // namespace lockwarden::crash

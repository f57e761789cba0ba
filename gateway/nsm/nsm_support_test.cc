// Unit tests of the NSM support pieces: DelayScheduler, HostResolver,
// NotifySourceCheck, OutstandingOps.
#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gateway/nsm/delay_scheduler.h"
#include "gateway/nsm/host_resolver.h"
#include "gateway/nsm/notify_source_check.h"
#include "gateway/nsm/outstanding_ops.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway::nsm {
namespace {

TEST(DelaySchedulerTest, RunsClosuresInDueOrder) {
  DelayScheduler scheduler;
  absl::Mutex mu;
  std::vector<int> order;
  auto push = [&](int v) {
    absl::MutexLock lock(&mu);
    order.push_back(v);
  };
  ASSERT_TRUE(scheduler.RunAfter(absl::Milliseconds(60), [&] { push(3); }).ok());
  ASSERT_TRUE(scheduler.RunAfter(absl::Milliseconds(20), [&] { push(2); }).ok());
  ASSERT_TRUE(scheduler.RunAfter(absl::ZeroDuration(), [&] { push(1); }).ok());
  absl::MutexLock lock(&mu);
  auto three = [&order]() { return order.size() == 3; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&three), absl::Seconds(5)));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(DelaySchedulerTest, RefusesBeyondTheLimitAndAfterStop) {
  DelayScheduler scheduler(2);
  EXPECT_TRUE(scheduler.RunAfter(absl::Hours(1), [] {}).ok());
  EXPECT_TRUE(scheduler.RunAfter(absl::Hours(1), [] {}).ok());
  EXPECT_EQ(scheduler.RunAfter(absl::Hours(1), [] {}).code(),
            absl::StatusCode::kResourceExhausted);
  std::atomic<bool> ran{false};
  scheduler.Stop();  // discards the pending ones, promptly
  EXPECT_EQ(scheduler.scheduled(), 0u);
  EXPECT_EQ(scheduler.RunAfter(absl::ZeroDuration(), [&] { ran = true; }).code(),
            absl::StatusCode::kCancelled);
  EXPECT_FALSE(ran.load());
}

absl::StatusOr<std::vector<std::string>> ResolveNow(HostResolver& resolver,
                                                    const std::string& name) {
  std::promise<absl::StatusOr<std::vector<std::string>>> promise;
  resolver.Resolve(name, absl::Seconds(5),
                   [&promise](absl::StatusOr<std::vector<std::string>> r) {
                     promise.set_value(std::move(r));
                   });
  return promise.get_future().get();
}

TEST(HostResolverTest, LiteralsAndLocalhostNeedNoLookup) {
  DelayScheduler scheduler;
  HostResolver resolver(HostResolverOptions{}, &scheduler);
  auto v4 = ResolveNow(resolver, "198.18.0.7");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(*v4, std::vector<std::string>{"198.18.0.7"});
  auto mapped = ResolveNow(resolver, "::ffff:198.18.0.7");
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(*mapped, std::vector<std::string>{"198.18.0.7"});
  auto local = ResolveNow(resolver, "LocalHost");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(*local, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(ResolveNow(resolver, "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HostResolverTest, UnknownNameFailsWithinTheTimeout) {
  DelayScheduler scheduler;
  HostResolver resolver(HostResolverOptions{}, &scheduler);
  std::promise<absl::Status> promise;
  const auto start = std::chrono::steady_clock::now();
  // RFC 6761: .invalid never resolves; with no DNS reachable the lookup
  // may hang instead, which the timeout bounds.
  resolver.Resolve("no-such-host.invalid", absl::Milliseconds(1500),
                   [&promise](absl::StatusOr<std::vector<std::string>> r) {
                     promise.set_value(r.status());
                   });
  absl::Status s = promise.get_future().get();
  EXPECT_FALSE(s.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(HostResolverTest, StopCancelsQueuedResolutions) {
  DelayScheduler scheduler;
  HostResolver resolver(HostResolverOptions{.threads = 1, .max_pending = 1},
                        &scheduler);
  resolver.Stop();
  EXPECT_EQ(ResolveNow(resolver, "client1.example").status().code(),
            absl::StatusCode::kCancelled);
}

SourceVerdict CheckNow(const NotifySourceCheck& check,
                       const std::string& mon_name,
                       const std::string& source) {
  std::promise<SourceVerdict> promise;
  check.Check(mon_name, source,
              [&promise](SourceVerdict v) { promise.set_value(v); });
  return promise.get_future().get();
}

TEST(NotifySourceCheckTest, StrictAcceptsOnlyPlausibleSources) {
  DelayScheduler scheduler;
  HostResolver resolver(HostResolverOptions{}, &scheduler);
  ClientAddressBook book;
  book.Record("client1", "198.18.0.7");
  NotifySourceCheck check(/*strict=*/true, &book, &resolver, absl::Seconds(2));
  EXPECT_TRUE(CheckNow(check, "client1", "198.18.0.7").accepted);
  SourceVerdict wrong = CheckNow(check, "client1", "198.18.0.8");
  EXPECT_FALSE(wrong.accepted);
  EXPECT_NE(wrong.reason.find("recorded address 198.18.0.7"),
            std::string::npos)
      << wrong.reason;
  EXPECT_TRUE(CheckNow(check, "198.18.0.9", "198.18.0.9").accepted);
  EXPECT_FALSE(CheckNow(check, "198.18.0.9", "198.18.0.10").accepted);
  EXPECT_TRUE(CheckNow(check, "localhost", "127.0.0.1").accepted);
  EXPECT_FALSE(CheckNow(check, "localhost", "198.18.0.7").accepted);
}

TEST(NotifySourceCheckTest, TrustNameAcceptsEverything) {
  DelayScheduler scheduler;
  HostResolver resolver(HostResolverOptions{}, &scheduler);
  ClientAddressBook book;
  book.Record("client1", "198.18.0.7");
  NotifySourceCheck check(/*strict=*/false, &book, &resolver,
                          absl::Seconds(2));
  SourceVerdict v = CheckNow(check, "client1", "198.18.0.99");
  EXPECT_TRUE(v.accepted);
  EXPECT_EQ(v.reason, "trust-name mode");
}

TEST(OutstandingOpsTest, StopWaitsForRunningOpsAndRefusesNewOnes) {
  OutstandingOps ops;
  ASSERT_TRUE(ops.Begin());
  std::thread finisher([&ops] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ops.End();
  });
  EXPECT_TRUE(ops.StopAndWait(absl::Seconds(5)));
  finisher.join();
  EXPECT_FALSE(ops.Begin());
  EXPECT_EQ(ops.count(), 0u);
}

}  // namespace
}  // namespace lockwarden::gateway::nsm

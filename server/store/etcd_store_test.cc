// EtcdStore beyond the StateStore contract, on a real 1-member etcd:
// fencing (a deposed leader's Txn fails its compare and writes nothing),
// etcd's Txn limits met by CommitPipeline's grouping, paged scans at one
// revision, the watch standbys follow, and endpoint failover.
#include "server/store/etcd_store.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/commit_pipeline.h"
#include "server/store/etcd_test_env.h"
#include "server/store/store_test_util.h"
#include "tests/etcd/etcd_cluster.h"

namespace lockwarden::store {
namespace {

using ::lockwarden::testing::EtcdCluster;
using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Pair;

const ::testing::Environment* const kEtcd =
    ::testing::AddGlobalTestEnvironment(new testing::EtcdTestEnvironment);

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = testing::EtcdTestEnvironment::cluster();
    ASSERT_NE(cluster_, nullptr);
    static int test_number = 0;
    base_ = absl::StrCat("/lwtest/store/", ++test_number, "/");
    EtcdClientOptions client;
    client.endpoints = cluster_->ClientEndpoints();
    absl::StatusOr<std::unique_ptr<EtcdClient>> c = EtcdClient::Create(client);
    ASSERT_THAT(c, IsOk());
    client_ = *std::move(c);
  }

  std::unique_ptr<EtcdStore> Open(bool fenced, int64_t page_keys = 256,
                                  size_t max_txn_ops = kEtcdMaxTxnOps) {
    EtcdStoreOptions options;
    options.max_txn_ops = max_txn_ops;
    options.client.endpoints = cluster_->ClientEndpoints();
    options.key_prefix = base_ + "state/";
    options.fenced = fenced;
    options.scan_page_keys = page_keys;
    absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Creates `key` (which must not exist) and returns its create revision.
  int64_t CreateLeaderKey(const std::string& key) {
    etcdserverpb::TxnRequest txn;
    etcdserverpb::Compare* c = txn.add_compare();
    c->set_key(key);
    c->set_target(etcdserverpb::Compare::CREATE);
    c->set_create_revision(0);
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value("127.0.0.1:1");
    absl::StatusOr<etcdserverpb::TxnResponse> r = client_->Txn(txn);
    EXPECT_THAT(r, IsOk());
    EXPECT_TRUE(r.ok() && r->succeeded());
    return r.ok() ? r->header().revision() : 0;
  }
  void DeleteKey(const std::string& key) {
    etcdserverpb::TxnRequest txn;
    txn.add_success()->mutable_request_delete_range()->set_key(key);
    EXPECT_THAT(client_->Txn(txn), IsOk());
  }

  EtcdCluster* cluster_ = nullptr;  // The binary's shared cluster.
  std::string base_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(EtcdStoreTest, DeposedLeaderCommitIsFencedAndWritesNothing) {
  std::unique_ptr<EtcdStore> a = Open(/*fenced=*/true);
  std::unique_ptr<EtcdStore> b = Open(/*fenced=*/true);
  const std::string key_a = base_ + "leader/a";
  const std::string key_b = base_ + "leader/b";
  const int64_t token_a = CreateLeaderKey(key_a);
  LW_ASSERT_OK(a->SetFence({key_a, token_a}));
  EXPECT_EQ(a->FencingToken(), static_cast<uint64_t>(token_a));
  LW_ASSERT_OK(a->Commit({Mutation::Put("lock/1", "a")}));

  // a is deposed (its key deleted, e.g. by DeposeIfDead); b is elected.
  DeleteKey(key_a);
  const int64_t token_b = CreateLeaderKey(key_b);
  EXPECT_GT(token_b, token_a);
  LW_ASSERT_OK(b->SetFence({key_b, token_b}));

  EXPECT_THAT(a->Commit({Mutation::Put("lock/2", "a"), Mutation::Delete("lock/1")}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(b->Get("lock/2"), IsOk());
  EXPECT_EQ(*b->Get("lock/2"), std::nullopt);
  EXPECT_EQ(*b->Get("lock/1"), std::optional<std::string>("a"));
  LW_ASSERT_OK(b->Commit({Mutation::Put("lock/3", "b")}));
  // Refused for good under the old token, without asking etcd again.
  EXPECT_THAT(a->Commit({}), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(a->Health(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(b->LoadAll(), IsOk());
  EXPECT_THAT(*b->LoadAll(), ElementsAre(Pair("lock/1", "a"), Pair("lock/3", "b")));
}

TEST_F(EtcdStoreTest, RecreatedLeaderKeyFencesTheOldIncarnation) {
  std::unique_ptr<EtcdStore> old_incarnation = Open(/*fenced=*/true);
  const std::string key = base_ + "leader/same-id";
  const int64_t first = CreateLeaderKey(key);
  LW_ASSERT_OK(old_incarnation->SetFence({key, first}));
  LW_ASSERT_OK(old_incarnation->Commit({Mutation::Put("k", "1")}));
  DeleteKey(key);
  const int64_t second = CreateLeaderKey(key);  // Same name, new revision.
  ASSERT_NE(first, second);
  EXPECT_THAT(old_incarnation->Commit({Mutation::Put("k", "2")}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  std::unique_ptr<EtcdStore> fresh = Open(/*fenced=*/true);
  LW_ASSERT_OK(fresh->SetFence({key, second}));
  EXPECT_EQ(*fresh->Get("k"), std::optional<std::string>("1"));
  LW_ASSERT_OK(fresh->Commit({Mutation::Put("k", "3")}));
}

TEST_F(EtcdStoreTest, FencedStoreWithoutLeadershipRefusesCommits) {
  std::unique_ptr<EtcdStore> store = Open(/*fenced=*/true);
  EXPECT_THAT(store->Commit({Mutation::Put("k", "v")}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(store->FencingToken(), 0u);
  EXPECT_THAT(store->SetFence({"", 5}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store->SetFence({"k", 0}), StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string key = base_ + "leader/x";
  LW_ASSERT_OK(store->SetFence({key, CreateLeaderKey(key)}));
  LW_ASSERT_OK(store->Commit({Mutation::Put("k", "v")}));
  store->ClearFence();
  EXPECT_THAT(store->Commit({Mutation::Put("k", "w")}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(*store->Get("k"), std::optional<std::string>("v"));
}

TEST_F(EtcdStoreTest, OurTxnLimitIsEtcdsOwn) {
  // etcd itself refuses 129 operations in one Txn ...
  etcdserverpb::TxnRequest txn;
  for (int i = 0; i < 129; ++i) {
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(absl::StrCat(base_, "raw/", i));
  }
  EXPECT_THAT(client_->Txn(txn), StatusIs(absl::StatusCode::kInvalidArgument));
  txn.mutable_success()->RemoveLast();
  LW_EXPECT_OK(client_->Txn(txn));
  // ... and the store refuses it before sending anything.
  std::unique_ptr<EtcdStore> store = Open(/*fenced=*/false);
  Delta batch;
  for (int i = 0; i < 129; ++i) batch.push_back(Mutation::Put(absl::StrCat(i), ""));
  EXPECT_THAT(store->Commit(batch), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EtcdStoreTest, TxnLimitFollowsTheOption) {
  auto batch_of = [](int n) {
    Delta batch;
    for (int i = 0; i < n; ++i) batch.push_back(Mutation::Put(absl::StrCat(i), "v"));
    return batch;
  };
  std::unique_ptr<EtcdStore> small = Open(/*fenced=*/false, 256, 8);
  EXPECT_EQ(small->Limits().max_mutations_per_batch, 8u);
  EXPECT_THAT(small->Commit(batch_of(9)), StatusIs(absl::StatusCode::kInvalidArgument));
  LW_EXPECT_OK(small->Commit(batch_of(8)));

  // Above the cluster's --max-txn-ops (the default 128 here) etcd itself
  // refuses the Txn: a clear INVALID_ARGUMENT, nothing written, and the
  // store stays healthy (a configuration error, not an outage).
  base_ += "big/";
  std::unique_ptr<EtcdStore> big = Open(/*fenced=*/false, 256, 200);
  EXPECT_EQ(big->Limits().max_mutations_per_batch, 200u);
  absl::Status refused = big->Commit(batch_of(129));
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("too many operations"));
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> written =
      big->LoadAll();
  ASSERT_THAT(written, IsOk());
  EXPECT_TRUE(written->empty());
  LW_EXPECT_OK(big->Health());

  EtcdStoreOptions bad;
  bad.client.endpoints = cluster_->ClientEndpoints();
  bad.max_txn_ops = 0;
  EXPECT_THAT(EtcdStore::Open(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad.max_txn_ops = kEtcdMaxTxnOpsLimit + 1;
  EXPECT_THAT(EtcdStore::Open(bad), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EtcdStoreTest, PipelineCutsGroupsToFitOneTxn) {
  std::unique_ptr<EtcdStore> etcd = Open(/*fenced=*/false);
  testing::GatedStore gated(etcd.get());
  testing::RecordingStore recording(&gated);
  CommitPipeline pipeline(&recording);
  auto delta_of = [](int d, int ops) {
    Delta delta;
    for (int i = 0; i < ops; ++i) {
      delta.push_back(Mutation::Put(absl::StrCat("d", d, "/", i), absl::StrCat(d)));
    }
    return delta;
  };
  // One delta alone beyond the Txn limit is refused at the door.
  EXPECT_THAT(pipeline.Enqueue(delta_of(99, 129), [](absl::Status) {}),
              StatusIs(absl::StatusCode::kInvalidArgument));

  constexpr int kDeltas = 11;
  constexpr int kOpsPerDelta = 50;
  absl::Mutex mu;
  int ok = 0, failed = 0;
  auto done = [&](absl::Status s) {
    absl::MutexLock lock(&mu);
    (s.ok() ? ok : failed)++;
  };
  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue(delta_of(0, kOpsPerDelta), done));
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, absl::Seconds(10)));
  for (int d = 1; d < kDeltas; ++d) {
    LW_ASSERT_OK(pipeline.Enqueue(delta_of(d, kOpsPerDelta), done));
  }
  gated.OpenGate();
  pipeline.Shutdown();
  EXPECT_EQ(ok, kDeltas);
  EXPECT_EQ(failed, 0);
  size_t largest = 0;
  for (const Delta& batch : recording.batches()) {
    EXPECT_LE(batch.size(), kEtcdMaxTxnOps);
    largest = std::max(largest, batch.size());
  }
  EXPECT_EQ(largest, 2u * kOpsPerDelta);  // Groups were formed, and cut.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> all =
      etcd->LoadAll();
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->size(), static_cast<size_t>(kDeltas * kOpsPerDelta));
}

TEST_F(EtcdStoreTest, ScanPagesAtOneRevision) {
  std::unique_ptr<EtcdStore> store = Open(/*fenced=*/false, /*page_keys=*/3);
  std::unique_ptr<EtcdStore> writer = Open(/*fenced=*/false);
  Delta batch;
  for (int i = 0; i < 10; ++i) {
    batch.push_back(Mutation::Put(absl::StrCat("k/", i), absl::StrCat(i)));
  }
  LW_ASSERT_OK(store->Commit(batch));
  std::vector<std::string> seen;
  absl::StatusOr<int64_t> revision = store->ScanWithRevision(
      "k/", [&](absl::string_view key, absl::string_view value) {
        if (seen.empty()) {
          // Changes after the first page must not show up in later pages.
          EXPECT_THAT(writer->Commit({Mutation::Put("k/5x", "new"),
                                      Mutation::Delete("k/9")}),
                      IsOk());
        }
        EXPECT_EQ(key.substr(2), value);
        seen.push_back(std::string(key));
        return absl::OkStatus();
      });
  ASSERT_THAT(revision, IsOk());
  EXPECT_THAT(seen, ElementsAre("k/0", "k/1", "k/2", "k/3", "k/4", "k/5",
                                "k/6", "k/7", "k/8", "k/9"));
  absl::StatusOr<int64_t> now = store->CurrentRevision();
  ASSERT_THAT(now, IsOk());
  EXPECT_EQ(*now, *revision + 1);
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> after =
      store->LoadAll("k/");
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->size(), 10u);  // +k/5x, -k/9.
  EXPECT_EQ((*after)[6].first, "k/5x");
}

TEST_F(EtcdStoreTest, WatchFromDeliversWholeCommitsInOrder) {
  std::unique_ptr<EtcdStore> store = Open(/*fenced=*/false);
  LW_ASSERT_OK(store->Commit({Mutation::Put("before", "x")}));
  absl::StatusOr<int64_t> revision =
      store->ScanWithRevision("", [](absl::string_view, absl::string_view) {
        return absl::OkStatus();
      });
  ASSERT_THAT(revision, IsOk());
  absl::Mutex mu;
  std::vector<std::vector<WatchEvent>> batches;
  absl::StatusOr<std::unique_ptr<EtcdWatch>> watch = store->WatchFrom(
      *revision + 1,
      [&](const std::vector<WatchEvent>& events) {
        absl::MutexLock lock(&mu);
        batches.push_back(events);
      },
      [](absl::Status s) { ADD_FAILURE() << "watch ended: " << s; });
  ASSERT_THAT(watch, IsOk());
  LW_ASSERT_OK(store->Commit({Mutation::Put("a", "1"), Mutation::Put("b", "2")}));
  LW_ASSERT_OK(store->Commit({Mutation::Delete("a"), Mutation::Put("c", "3"),
                              Mutation::Delete("before")}));
  // Events per revision, in order; a revision is never split.
  std::vector<std::vector<std::string>> by_revision;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    {
      absl::MutexLock lock(&mu);
      by_revision.clear();
      int64_t last_revision = 0;
      for (const auto& batch : batches) {
        for (const WatchEvent& e : batch) {
          if (e.mod_revision != last_revision) by_revision.emplace_back();
          last_revision = e.mod_revision;
          by_revision.back().push_back(absl::StrCat(
              e.type == WatchEvent::Type::kPut ? "put " : "del ", e.key,
              e.type == WatchEvent::Type::kPut ? "=" + e.value : ""));
        }
      }
      if (by_revision.size() >= 2) break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(by_revision,
              ElementsAre(ElementsAre("put a=1", "put b=2"),
                          ElementsAre("del a", "put c=3", "del before")));
  EXPECT_EQ((*watch)->next_revision(), *revision + 3);
  (*watch)->Cancel();
}

TEST_F(EtcdStoreTest, SyncMarkerIsDeliveredAsProgressAndNeverAsARecord) {
  std::unique_ptr<EtcdStore> store = Open(/*fenced=*/false);
  absl::StatusOr<int64_t> revision = store->CurrentRevision();
  ASSERT_THAT(revision, IsOk());
  absl::Mutex mu;
  std::vector<std::string> keys;
  absl::StatusOr<std::unique_ptr<EtcdWatch>> watch = store->WatchFrom(
      *revision + 1,
      [&](const std::vector<WatchEvent>& events) {
        absl::MutexLock lock(&mu);
        for (const WatchEvent& e : events) keys.push_back(e.key);
      },
      [](absl::Status s) { ADD_FAILURE() << "watch ended: " << s; });
  ASSERT_THAT(watch, IsOk());
  LW_ASSERT_OK(store->Commit({Mutation::Put("a", "1")}));
  absl::StatusOr<int64_t> marker = store->PutSyncMarker();
  ASSERT_THAT(marker, IsOk());
  EXPECT_GT(*marker, *revision + 1);
  // A marker-only response proves delivery up to the marker's revision.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((*watch)->delivered_revision() < *marker && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ((*watch)->delivered_revision(), *marker);
  EXPECT_EQ((*watch)->next_revision(), *marker + 1);
  {
    absl::MutexLock lock(&mu);
    EXPECT_THAT(keys, ElementsAre("a"));  // The marker is nobody's record.
  }
  // Outside the prefix: no Scan or Get sees it.
  std::vector<std::string> scanned;
  LW_ASSERT_OK(store->Scan("", [&](absl::string_view k, absl::string_view) {
    scanned.emplace_back(k);
    return absl::OkStatus();
  }));
  EXPECT_THAT(scanned, ElementsAre("a"));
  EXPECT_EQ(
      store->sync_key(),
      absl::StrCat(
          store->key_prefix().substr(0, store->key_prefix().size() - 1), "0"));
  (*watch)->Cancel();
}

TEST_F(EtcdStoreTest, DeadEndpointIsSkippedAndAllDeadIsUnavailable) {
  EtcdStoreOptions options;
  // Port 1 on loopback: nothing listens there.
  options.client.endpoints = {"http://127.0.0.1:1", cluster_->ClientEndpoints()[0]};
  options.key_prefix = base_ + "failover/";
  options.fenced = false;
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
  ASSERT_THAT(store, IsOk());
  LW_EXPECT_OK((*store)->Commit({Mutation::Put("k", "v")}));
  LW_EXPECT_OK((*store)->Health());

  options.client.endpoints = {"127.0.0.1:1"};
  options.client.call_timeout = absl::Seconds(2);
  absl::StatusOr<std::unique_ptr<EtcdStore>> dead = EtcdStore::Open(options);
  ASSERT_THAT(dead, IsOk());
  const absl::Time start = absl::Now();
  EXPECT_THAT((*dead)->Commit({Mutation::Put("k", "v")}),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  EXPECT_THAT((*dead)->Health(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(EtcdEndpointsTest, ParsesFlag) {
  absl::StatusOr<std::vector<std::string>> e =
      ParseEtcdEndpoints("http://127.0.0.1:2379, 10.0.0.2:2379");
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->size(), 2u);
  EXPECT_THAT(ParseEtcdEndpoints(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseEtcdEndpoints("https://a:1"),
              StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_THAT(ParseEtcdEndpoints("http://nohost"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseEtcdEndpoints("a:0"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace lockwarden::store

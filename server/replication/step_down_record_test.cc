// ClaimStepDown on a real 1-member etcd: a StepDown request id is honoured
// once, by the leader that claims it first; a retry of it at a later
// leader changes nothing; a deposed leader cannot claim.
#include "server/replication/step_down_record.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/etcd_client.h"
#include "tests/etcd/etcd_cluster.h"

namespace lockwarden::replication {
namespace {

using ::lockwarden::testing::EtcdCluster;
using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;

constexpr char kPrefix[] = "/lwtest/stepdown/";

class StepDownRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = EtcdCluster::Start({.members = 1});
    ASSERT_THAT(cluster, IsOk());
    cluster_ = *std::move(cluster);
    store::EtcdClientOptions o;
    o.endpoints = cluster_->ClientEndpoints();
    auto client = store::EtcdClient::Create(o);
    ASSERT_THAT(client, IsOk());
    client_ = *std::move(client);
  }

  // Creates a leader key and returns the Leadership holding it.
  Leadership Lead(const std::string& id) {
    Leadership l;
    l.key = absl::StrCat("/lwtest/leader/", id);
    etcdserverpb::TxnRequest txn;
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(l.key);
    put->set_value(id);
    auto r = client_->Txn(txn);
    EXPECT_THAT(r, IsOk());
    if (r.ok()) l.create_revision = r->header().revision();
    return l;
  }

  void Depose(const Leadership& l) {
    etcdserverpb::TxnRequest txn;
    txn.add_success()->mutable_request_delete_range()->set_key(l.key);
    EXPECT_THAT(client_->Txn(txn), IsOk());
  }

  absl::StatusOr<StepDownClaimResult> Claim(const std::string& id,
                                            const Leadership& l) {
    return ClaimStepDown(client_.get(), kPrefix, id, l);
  }

  std::unique_ptr<EtcdCluster> cluster_;
  std::unique_ptr<store::EtcdClient> client_;
};

TEST_F(StepDownRecordTest, RetryAfterAFailoverDoesNotDeposeTheNewLeader) {
  const Leadership a = Lead("a");
  auto first = Claim("req-1", a);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->claim, StepDownClaim::kFirst);
  // The same leader, still leading (its resign failed): it may try again.
  auto again = Claim("req-1", a);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->claim, StepDownClaim::kFirst);

  // a resigns; b leads; the lost reply's retry reaches b.
  Depose(a);
  const Leadership b = Lead("b");
  auto retry = Claim("req-1", b);
  ASSERT_THAT(retry, IsOk());
  EXPECT_EQ(retry->claim, StepDownClaim::kAlreadyHonored);
  EXPECT_EQ(retry->honored_by_token, a.create_revision);
  // A new request is b's to honour.
  auto fresh = Claim("req-2", b);
  ASSERT_THAT(fresh, IsOk());
  EXPECT_EQ(fresh->claim, StepDownClaim::kFirst);
}

TEST_F(StepDownRecordTest, DeposedLeaderCannotClaim) {
  const Leadership a = Lead("a");
  Depose(a);
  EXPECT_THAT(Claim("req-3", a),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Nothing was recorded: a real leader may still honour that id.
  const Leadership b = Lead("b");
  auto claim = Claim("req-3", b);
  ASSERT_THAT(claim, IsOk());
  EXPECT_EQ(claim->claim, StepDownClaim::kFirst);
}

TEST_F(StepDownRecordTest, BadRequestIdsAreRefused) {
  const Leadership a = Lead("a");
  for (const std::string& id :
       {std::string(), std::string("a/b"),
        std::string(kStepDownRequestIdBytesMax + 1, 'x')}) {
    EXPECT_THAT(Claim(id, a), StatusIs(absl::StatusCode::kInvalidArgument))
        << id;
  }
}

}  // namespace
}  // namespace lockwarden::replication

#include "server/replication/step_down_record.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lockwarden::replication {

absl::StatusOr<StepDownClaimResult> ClaimStepDown(
    store::EtcdClient* client, const std::string& prefix,
    const std::string& request_id, const Leadership& leadership) {
  if (request_id.empty() || request_id.size() > kStepDownRequestIdBytesMax ||
      request_id.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: 1..", kStepDownRequestIdBytesMax,
                     " bytes without '/' required"));
  }
  if (leadership.key.empty() || leadership.create_revision <= 0) {
    return absl::FailedPreconditionError(
        "step-down: this server is not the leader");
  }
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(absl::ToInt64Seconds(kStepDownRecordTtl));
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> lease =
      client->LeaseGrant(grant);
  if (!lease.ok()) return lease.status();

  const std::string key = absl::StrCat(prefix, request_id);
  etcdserverpb::TxnRequest txn;
  etcdserverpb::Compare* unclaimed = txn.add_compare();
  unclaimed->set_key(key);
  unclaimed->set_target(etcdserverpb::Compare::CREATE);
  unclaimed->set_create_revision(0);
  etcdserverpb::Compare* leading = txn.add_compare();
  leading->set_key(leadership.key);
  leading->set_target(etcdserverpb::Compare::CREATE);
  leading->set_create_revision(leadership.create_revision);
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(absl::StrCat(leadership.create_revision));
  put->set_lease(lease->id());
  txn.add_failure()->mutable_request_range()->set_key(key);
  absl::StatusOr<etcdserverpb::TxnResponse> r = client->Txn(txn);
  if (!r.ok()) return r.status();
  StepDownClaimResult result;
  if (r->succeeded()) return result;  // kFirst; the lease now holds the record.

  // The unused lease would expire by itself; revoke it to keep etcd tidy.
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(lease->id());
  (void)client->LeaseRevoke(revoke);
  if (r->responses_size() != 1 ||
      r->responses(0).response_range().kvs_size() == 0) {
    return absl::FailedPreconditionError(
        "step-down: this server is not the leader any more");
  }
  int64_t token = 0;
  if (!absl::SimpleAtoi(r->responses(0).response_range().kvs(0).value(),
                        &token)) {
    return absl::DataLossError(
        absl::StrCat("step-down record ", key, " is not a token"));
  }
  if (token == leadership.create_revision)
    return result;  // Ours: resign again.
  result.claim = StepDownClaim::kAlreadyHonored;
  result.honored_by_token = token;
  return result;
}

}  // namespace lockwarden::replication

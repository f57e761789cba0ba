#include "server/store/etcd_store.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "mvccpb/kv.pb.h"

namespace lockwarden::store {
namespace {

constexpr char kFencedMessage[] = "fenced: not the leader any more";

bool IsCompacted(const absl::Status& s) {
  return s.code() == absl::StatusCode::kOutOfRange;
}

}  // namespace

static absl::Status CheckEtcdStoreOptions(const EtcdStoreOptions& options) {
  if (!PrefixSuccessor(options.key_prefix).has_value()) {
    return absl::InvalidArgumentError(
        "etcd store: key_prefix must be non-empty and not all 0xff bytes");
  }
  if (options.scan_page_keys < 1) {
    return absl::InvalidArgumentError("etcd store: scan_page_keys must be >= 1");
  }
  if (options.max_txn_ops < 1 || options.max_txn_ops > kEtcdMaxTxnOpsLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd store: max_txn_ops must be 1..", kEtcdMaxTxnOpsLimit, ", not ",
        options.max_txn_ops));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(
    EtcdStoreOptions options) {
  LW_RETURN_IF_ERROR(CheckEtcdStoreOptions(options));
  LW_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> client,
                      EtcdClient::Create(options.client));
  EtcdClient* raw = client.get();
  return std::unique_ptr<EtcdStore>(
      new EtcdStore(std::move(client), raw, std::move(options)));
}

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::OpenWithClient(
    EtcdClient* client, EtcdStoreOptions options) {
  if (client == nullptr) return absl::InvalidArgumentError("etcd store: no client");
  LW_RETURN_IF_ERROR(CheckEtcdStoreOptions(options));
  return std::unique_ptr<EtcdStore>(
      new EtcdStore(nullptr, client, std::move(options)));
}

EtcdStore::EtcdStore(std::unique_ptr<EtcdClient> owned, EtcdClient* client,
                     EtcdStoreOptions options)
    : owned_client_(std::move(owned)),
      client_(client),
      options_(std::move(options)),
      range_end_(*PrefixSuccessor(options_.key_prefix)) {}

EtcdStore::~EtcdStore() = default;

StoreLimits EtcdStore::Limits() const {
  StoreLimits limits;
  limits.max_mutations_per_batch = options_.max_txn_ops;
  limits.max_batch_bytes = kEtcdMaxRequestBytes - kEtcdRequestHeadroomBytes;
  // A single record may use the whole batch budget, but never more than the
  // generic limit.
  limits.max_value_bytes = std::min(kMaxValueBytes, limits.max_batch_bytes);
  return limits;
}

absl::Status EtcdStore::SetFence(EtcdFence fence) {
  if (fence.leader_key.empty() || fence.create_revision <= 0) {
    return absl::InvalidArgumentError(
        "etcd fence needs a leader key and a create revision > 0");
  }
  absl::MutexLock lock(&mu_);
  fence_ = std::move(fence);
  return absl::OkStatus();
}

void EtcdStore::ClearFence() {
  absl::MutexLock lock(&mu_);
  fence_.reset();
}

uint64_t EtcdStore::FencingToken() const {
  absl::MutexLock lock(&mu_);
  return fence_.has_value() ? static_cast<uint64_t>(fence_->create_revision) : 0;
}

absl::Status EtcdStore::Health() const {
  absl::MutexLock lock(&mu_);
  if (options_.fenced) {
    if (!fence_.has_value()) {
      return absl::FailedPreconditionError("etcd store: not the leader");
    }
    if (fence_->create_revision == fenced_out_token_) {
      return absl::FailedPreconditionError(kFencedMessage);
    }
  }
  return last_call_;
}

void EtcdStore::NoteCallResult(const absl::Status& status) const {
  absl::MutexLock lock(&mu_);
  // Only transport trouble makes the store unhealthy; a fenced compare is
  // tracked separately and caller errors say nothing about etcd.
  if (status.ok() || status.code() == absl::StatusCode::kUnavailable) {
    last_call_ = status;
  }
}

absl::StatusOr<std::optional<EtcdFence>> EtcdStore::CurrentFence() const {
  absl::MutexLock lock(&mu_);
  if (!options_.fenced) return std::optional<EtcdFence>();
  if (!fence_.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat(kFencedMessage, " (no leadership held)"));
  }
  if (fence_->create_revision == fenced_out_token_) {
    return absl::FailedPreconditionError(absl::StrCat(
        kFencedMessage, " (token ", fenced_out_token_, " was refused)"));
  }
  return std::optional<EtcdFence>(fence_);
}

absl::StatusOr<etcdserverpb::TxnRequest> EtcdStore::BuildTxn(
    const Delta& batch, const std::optional<EtcdFence>& fence) const {
  etcdserverpb::TxnRequest txn;
  if (fence.has_value()) {
    etcdserverpb::Compare* c = txn.add_compare();
    c->set_key(fence->leader_key);
    c->set_target(etcdserverpb::Compare::CREATE);
    c->set_result(etcdserverpb::Compare::EQUAL);
    c->set_create_revision(fence->create_revision);
  }
  // etcd refuses a txn that touches one key twice; the last mutation of a
  // key is the one that counts, so send only that, at its position.
  absl::flat_hash_map<absl::string_view, size_t> last;
  for (size_t i = 0; i < batch.size(); ++i) last[batch[i].key] = i;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Mutation& m = batch[i];
    if (last[m.key] != i) continue;
    etcdserverpb::RequestOp* op = txn.add_success();
    const std::string key = absl::StrCat(options_.key_prefix, m.key);
    if (m.op == Mutation::Op::kPut) {
      op->mutable_request_put()->set_key(key);
      op->mutable_request_put()->set_value(m.value);
    } else {
      op->mutable_request_delete_range()->set_key(key);
    }
  }
  const size_t bytes = txn.ByteSizeLong();
  if (bytes + kEtcdRequestHeadroomBytes / 4 > kEtcdMaxRequestBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd txn of ", bytes, " bytes exceeds the ", kEtcdMaxRequestBytes,
        "-byte request limit"));
  }
  return txn;
}

absl::Status EtcdStore::Commit(const Delta& batch) {
  LW_RETURN_IF_ERROR(ValidateBatch(batch, Limits()));
  LW_ASSIGN_OR_RETURN(std::optional<EtcdFence> fence, CurrentFence());
  if (batch.empty()) {
    absl::MutexLock lock(&mu_);
    return last_call_;
  }
  LW_ASSIGN_OR_RETURN(etcdserverpb::TxnRequest txn, BuildTxn(batch, fence));
  EtcdCallInfo info;
  absl::StatusOr<etcdserverpb::TxnResponse> response = client_->Txn(txn, &info);
  NoteCallResult(response.status());
  if (!response.ok()) {
    if (response.status().code() == absl::StatusCode::kUnavailable) {
      return response.status();
    }
    // etcd refused the request itself (e.g. too large): nothing applied.
    return absl::Status(response.status().code(),
                        absl::StrCat("etcd commit: ", response.status().message()));
  }
  if (!response->succeeded()) {
    absl::MutexLock lock(&mu_);
    fenced_out_token_ = fence.has_value() ? fence->create_revision : 0;
    return absl::FailedPreconditionError(absl::StrCat(
        kFencedMessage, " (leader key ", fence.has_value() ? fence->leader_key : "",
        " no longer has create revision ",
        fence.has_value() ? fence->create_revision : 0, ")",
        info.earlier_attempt_uncertain
            ? "; an earlier attempt's outcome is unknown"
            : ""));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> EtcdStore::ScanWithRevision(absl::string_view prefix,
                                                    const ScanFn& fn) const {
  const std::string start = absl::StrCat(options_.key_prefix, prefix);
  // key_prefix has a successor, so so does any extension of it.
  const std::string end = prefix.empty() ? range_end_ : *PrefixSuccessor(start);
  etcdserverpb::RangeRequest request;
  request.set_key(start);
  request.set_range_end(end);
  request.set_limit(options_.scan_page_keys);
  int64_t revision = 0;
  while (true) {
    absl::StatusOr<etcdserverpb::RangeResponse> page = client_->Range(request);
    NoteCallResult(page.status());
    if (!page.ok()) {
      if (IsCompacted(page.status())) {
        return absl::AbortedError(absl::StrCat(
            "etcd scan: revision ", revision, " was compacted mid-scan"));
      }
      return page.status();
    }
    if (revision == 0) {
      revision = page->header().revision();
      request.set_revision(revision);  // Later pages see the same view.
    }
    for (const mvccpb::KeyValue& kv : page->kvs()) {
      absl::string_view key = kv.key();
      if (key.size() < options_.key_prefix.size()) {
        return absl::DataLossError("etcd scan: key outside the prefix");
      }
      key.remove_prefix(options_.key_prefix.size());
      LW_RETURN_IF_ERROR(fn(key, kv.value()));
    }
    if (!page->more() || page->kvs_size() == 0) break;
    // Continue just after the last key returned.
    request.set_key(absl::StrCat(page->kvs(page->kvs_size() - 1).key(),
                                 std::string(1, '\0')));
  }
  return revision;
}

absl::Status EtcdStore::Scan(absl::string_view prefix, const ScanFn& fn) const {
  return ScanWithRevision(prefix, fn).status();
}

absl::StatusOr<std::optional<std::string>> EtcdStore::Get(
    absl::string_view key) const {
  etcdserverpb::RangeRequest request;
  request.set_key(absl::StrCat(options_.key_prefix, key));
  absl::StatusOr<etcdserverpb::RangeResponse> response = client_->Range(request);
  NoteCallResult(response.status());
  if (!response.ok()) return response.status();
  if (response->kvs_size() == 0) return std::optional<std::string>();
  return std::optional<std::string>(response->kvs(0).value());
}

absl::StatusOr<int64_t> EtcdStore::CurrentRevision() const {
  etcdserverpb::RangeRequest request;
  request.set_key(options_.key_prefix);
  request.set_range_end(range_end_);
  request.set_count_only(true);
  absl::StatusOr<etcdserverpb::RangeResponse> response = client_->Range(request);
  NoteCallResult(response.status());
  if (!response.ok()) return response.status();
  return response->header().revision();
}

absl::StatusOr<int64_t> EtcdStore::PutSyncMarker() const {
  etcdserverpb::TxnRequest txn;
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(range_end_);
  put->set_value("sync");
  absl::StatusOr<etcdserverpb::TxnResponse> response = client_->Txn(txn);
  NoteCallResult(response.status());
  if (!response.ok()) return response.status();
  return response->header().revision();
}

absl::StatusOr<std::unique_ptr<EtcdWatch>> EtcdStore::WatchFrom(
    int64_t start_revision, EtcdWatch::EventsFn on_events,
    EtcdWatch::EndFn on_end, bool previous_values, WatchGapFn on_gap) const {
  EtcdWatchOptions options;
  options.key = options_.key_prefix;
  // The prefix's range and the sync marker right after it.
  options.range_end = range_end_ + std::string(1, '\0');
  options.sync_key = range_end_;
  options.start_revision = start_revision;
  options.strip_prefix = options_.key_prefix;
  options.prev_kv = previous_values;
  options.on_gap = std::move(on_gap);
  return EtcdWatch::Start(client_, std::move(options), std::move(on_events),
                          std::move(on_end));
}

}  // namespace lockwarden::store

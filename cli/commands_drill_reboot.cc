// drill client-reboot: proves that an SM_NOTIFY from a rebooted client ends
// exactly that client's older state, and that a stale one ends nothing.
//
// Through gateway identity kDrillGatewayId, with test client C (--client)
// whose current NSM state is S (its recorded state, or 1) and a control
// client C-control:
//   A  C  svid 1  f1  [0,100)  EX  state S      granted
//   B  C  svid 2  f2  whole    SH  state S      granted
//   K  C-control  f3  [0,100)  EX  state 1      granted
//   W  C  svid 3  f3  [0,10)   EX  state S      blocked behind K (a waiter)
//   SM_NOTIFY(C, S)        stale: nothing may change
//   N  C  svid 4  f4  [0,100)  EX  state S+2    granted (the new incarnation
//                                               locked before its notify)
//   SM_NOTIFY(C, S+2)      A, B and W go; N, K and everything else stay;
//                          C's recorded state is S+2
// Then N and K are unlocked. The notify is sent as a gateway would, with
// MonitorService.Notify.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/drill.h"
#include "cli/parse.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "lockwarden/v1/monitor_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;

constexpr char kF1[] = "lockwardenctl-drill-f1";
constexpr char kF2[] = "lockwardenctl-drill-f2";
constexpr char kF3[] = "lockwardenctl-drill-f3";
constexpr char kF4[] = "lockwardenctl-drill-f4";

struct Held {  // One lock or waiter the drill creates.
  std::string client;
  uint32_t svid;
  std::string fh;
  uint64_t offset;
  uint64_t length;
  bool exclusive;
};

v1::LockOwner OwnerOf(const Held& h) {
  v1::LockOwner o;
  o.set_client_name(h.client);
  o.set_svid(h.svid);
  o.set_oh(absl::StrCat("drill-", h.svid));
  return o;
}

class RebootDrill {
 public:
  RebootDrill(CommandEnv* env, Connection* connection, std::string client)
      : env_(env), c_(connection), client_(std::move(client)),
        control_(client_ + "-control") {}

  int Run();

 private:
  absl::StatusOr<v1::LockStatus> Lock(const Held& h, int32_t state, bool block) {
    v1::LockRequest r;
    r.set_request_id(NewRequestId());
    r.set_gateway_id(kDrillGatewayId);
    r.set_file_handle(h.fh);
    *r.mutable_owner() = OwnerOf(h);
    r.mutable_range()->set_offset(h.offset);
    r.mutable_range()->set_length(h.length);
    r.set_exclusive(h.exclusive);
    r.set_block(block);
    r.set_client_state(state);
    r.set_monitored(true);
    v1::LockResponse resp;
    absl::Status s = c_->Call("Lock", [&](grpc::ClientContext* ctx,
                                          const std::shared_ptr<grpc::Channel>& ch) {
      return v1::LockService::NewStub(ch)->Lock(ctx, r, &resp);
    });
    if (!s.ok()) return s;
    return resp.status();
  }

  absl::StatusOr<v1::NotifyResponse> Notify(int32_t state) {
    v1::NotifyRequest r;
    r.set_request_id(NewRequestId());
    r.set_gateway_id(kDrillGatewayId);
    r.set_mon_name(client_);
    r.set_state(state);
    v1::NotifyResponse resp;
    absl::Status s = c_->Call("Notify", [&](grpc::ClientContext* ctx,
                                            const std::shared_ptr<grpc::Channel>& ch) {
      return v1::MonitorService::NewStub(ch)->Notify(ctx, r, &resp);
    });
    if (!s.ok()) return s;
    return resp;
  }

  // Locks and waiters of `client` (one page: the drill's clients hold few).
  absl::Status Holdings(const std::string& client, std::vector<v1::Lock>* locks,
                        std::vector<v1::Waiter>* waiters) {
    v1::ListLocksRequest lr;
    lr.mutable_filter()->set_client_name(client);
    lr.set_page_size(1000);
    v1::ListLocksResponse lresp;
    absl::Status s = c_->Call("ListLocks", [&](grpc::ClientContext* ctx,
                                               const std::shared_ptr<grpc::Channel>& ch) {
      return v1::AdminService::NewStub(ch)->ListLocks(ctx, lr, &lresp);
    });
    if (!s.ok()) return s;
    v1::ListWaitersRequest wr;
    wr.mutable_filter()->set_client_name(client);
    wr.set_page_size(1000);
    v1::ListWaitersResponse wresp;
    s = c_->Call("ListWaiters", [&](grpc::ClientContext* ctx,
                                    const std::shared_ptr<grpc::Channel>& ch) {
      return v1::AdminService::NewStub(ch)->ListWaiters(ctx, wr, &wresp);
    });
    if (!s.ok()) return s;
    locks->assign(lresp.locks().begin(), lresp.locks().end());
    waiters->assign(wresp.waiters().begin(), wresp.waiters().end());
    return absl::OkStatus();
  }

  absl::StatusOr<int32_t> RecordedState() {
    v1::ListClientsRequest r;
    r.set_client_name_prefix(client_);
    r.set_page_size(1000);
    v1::ListClientsResponse resp;
    absl::Status s = c_->Call("ListClients", [&](grpc::ClientContext* ctx,
                                                 const std::shared_ptr<grpc::Channel>& ch) {
      return v1::AdminService::NewStub(ch)->ListClients(ctx, r, &resp);
    });
    if (!s.ok()) return s;
    for (const v1::Client& c : resp.clients()) {
      if (c.client_name() == client_) return c.nsm_state();
    }
    return 0;
  }

  // Releases whatever the drill's clients still hold (best effort).
  void Cleanup() {
    for (const std::string& client : {client_, control_}) {
      std::vector<v1::Lock> locks;
      std::vector<v1::Waiter> waiters;
      if (!Holdings(client, &locks, &waiters).ok()) continue;
      for (const v1::Waiter& w : waiters) {
        v1::CancelRequest r;
        r.set_request_id(NewRequestId());
        r.set_gateway_id(w.gateway_id());
        r.set_file_handle(w.file_handle());
        *r.mutable_owner() = w.owner();
        *r.mutable_range() = w.range();
        r.set_exclusive(w.exclusive());
        r.set_block(true);
        v1::CancelResponse resp;
        (void)c_->Call("Cancel", [&](grpc::ClientContext* ctx,
                                     const std::shared_ptr<grpc::Channel>& ch) {
          return v1::LockService::NewStub(ch)->Cancel(ctx, r, &resp);
        });
      }
      for (const v1::Lock& l : locks) {
        v1::UnlockRequest r;
        r.set_request_id(NewRequestId());
        r.set_gateway_id(l.gateway_id());
        r.set_file_handle(l.file_handle());
        *r.mutable_owner() = l.owner();
        *r.mutable_range() = l.range();
        v1::UnlockResponse resp;
        (void)c_->Call("Unlock", [&](grpc::ClientContext* ctx,
                                     const std::shared_ptr<grpc::Channel>& ch) {
          return v1::LockService::NewStub(ch)->Unlock(ctx, r, &resp);
        });
      }
    }
  }

  void Check(const std::string& what, bool ok, const std::string& detail) {
    checks_.push_back({what, ok, detail});
    passed_ = passed_ && ok;
  }

  // True if `locks` has the drill lock `h`.
  static bool Has(const std::vector<v1::Lock>& locks, const Held& h) {
    for (const v1::Lock& l : locks) {
      if (l.file_handle() == h.fh && l.owner().svid() == h.svid &&
          l.owner().client_name() == h.client && l.range().offset() == h.offset &&
          l.range().length() == h.length) {
        return true;
      }
    }
    return false;
  }

  int Fail(const absl::Status& status) {
    Cleanup();
    return env_->Fail(status);
  }

  int Report(int32_t old_state, int32_t new_state);

  struct CheckResult {
    std::string what;
    bool ok;
    std::string detail;
  };
  CommandEnv* const env_;
  Connection* const c_;
  const std::string client_;
  const std::string control_;
  std::vector<CheckResult> checks_;
  bool passed_ = true;
};

int RebootDrill::Run() {
  std::vector<v1::Lock> locks, control_locks;
  std::vector<v1::Waiter> waiters, control_waiters;
  if (absl::Status s = Holdings(client_, &locks, &waiters); !s.ok()) return env_->Fail(s);
  if (absl::Status s = Holdings(control_, &control_locks, &control_waiters); !s.ok()) {
    return env_->Fail(s);
  }
  if (!locks.empty() || !waiters.empty() || !control_locks.empty() ||
      !control_waiters.empty()) {
    return env_->Fail(absl::FailedPreconditionError(absl::StrCat(
        "client '", client_, "' or '", control_, "' holds locks or waits: the drill only "
        "uses clients that hold nothing (choose another --client)")));
  }
  absl::StatusOr<int32_t> recorded = RecordedState();
  if (!recorded.ok()) return env_->Fail(recorded.status());
  const int32_t old_state = *recorded == 0 ? 1 : *recorded;
  const int32_t new_state = static_cast<int32_t>(static_cast<uint32_t>(old_state) + 2);

  const Held a{client_, 1, kF1, 0, 100, true};
  const Held b{client_, 2, kF2, 0, 0, false};
  const Held k{control_, 1, kF3, 0, 100, true};
  const Held w{client_, 3, kF3, 0, 10, true};
  const Held n{client_, 4, kF4, 0, 100, true};
  struct Step {
    const Held* h;
    int32_t state;
    bool block;
    v1::LockStatus want;
  };
  for (const Step& step : {Step{&a, old_state, false, v1::LOCK_STATUS_GRANTED},
                           Step{&b, old_state, false, v1::LOCK_STATUS_GRANTED},
                           Step{&k, 1, false, v1::LOCK_STATUS_GRANTED},
                           Step{&w, old_state, true, v1::LOCK_STATUS_BLOCKED}}) {
    absl::StatusOr<v1::LockStatus> got = Lock(*step.h, step.state, step.block);
    if (!got.ok()) return Fail(got.status());
    if (*got != step.want) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "setup LOCK ", step.h->client, " svid ", step.h->svid, " answered ",
          ShortEnumName(*got), ", expected ", ShortEnumName(step.want),
          " (is the drill gateway draining or in grace?)")));
    }
  }

  absl::StatusOr<v1::NotifyResponse> stale = Notify(old_state);
  if (!stale.ok()) return Fail(stale.status());
  if (absl::Status s = Holdings(client_, &locks, &waiters); !s.ok()) return Fail(s);
  Check("stale SM_NOTIFY is ignored", stale->stale() && locks.size() == 2 && waiters.size() == 1,
        absl::StrCat("state ", old_state, ": stale=", stale->stale() ? "true" : "false", ", ",
                     locks.size(), " locks and ", waiters.size(), " waiter kept (want 2 and 1)"));

  absl::StatusOr<v1::LockStatus> got = Lock(n, new_state, false);
  if (!got.ok()) return Fail(got.status());
  Check("new incarnation locks", *got == v1::LOCK_STATUS_GRANTED,
        absl::StrCat("LOCK under state ", new_state, " answered ", ShortEnumName(*got)));

  absl::StatusOr<v1::NotifyResponse> fresh = Notify(new_state);
  if (!fresh.ok()) return Fail(fresh.status());
  if (absl::Status s = Holdings(client_, &locks, &waiters); !s.ok()) return Fail(s);
  if (absl::Status s = Holdings(control_, &control_locks, &control_waiters); !s.ok()) {
    return Fail(s);
  }
  Check("older locks released", !Has(locks, a) && !Has(locks, b),
        absl::StrCat("A (f1) ", Has(locks, a) ? "still held" : "released", ", B (f2) ",
                     Has(locks, b) ? "still held" : "released"));
  Check("older waiter cancelled", waiters.empty(),
        absl::StrCat(waiters.size(), " waiters left (want 0)"));
  Check("newer lock kept", Has(locks, n) && locks.size() == 1,
        absl::StrCat("N (f4) ", Has(locks, n) ? "held" : "missing", "; ", locks.size(),
                     " locks of the client (want 1)"));
  Check("other client untouched", Has(control_locks, k),
        absl::StrCat(control_, " lock K (f3) ", Has(control_locks, k) ? "held" : "missing"));
  absl::StatusOr<int32_t> now = RecordedState();
  if (!now.ok()) return Fail(now.status());
  Check("state recorded", *now == new_state,
        absl::StrCat("recorded state ", *now, " (want ", new_state, ")"));
  Cleanup();
  return Report(old_state, new_state);
}

int RebootDrill::Report(int32_t old_state, int32_t new_state) {
  if (env_->format() == OutputFormat::kJson) {
    nlohmann::json checks = nlohmann::json::array();
    for (const CheckResult& c : checks_) {
      checks.push_back({{"check", c.what}, {"passed", c.ok}, {"detail", c.detail}});
    }
    env_->PrintJson({{"drill", "client-reboot"},
                     {"passed", passed_},
                     {"client", client_},
                     {"gateway_id", kDrillGatewayId},
                     {"server", c_->answered_address()},
                     {"old_state", old_state},
                     {"new_state", new_state},
                     {"checks", checks}});
  } else {
    KeyValueList kv;
    kv.Add("result", passed_ ? "PASSED: exactly the older locks and waiter went away"
                             : "FAILED: see the checks below");
    kv.Add("client", absl::StrCat(client_, " (state ", old_state, " -> ", new_state, ")"));
    kv.Add("gateway identity", kDrillGatewayId);
    kv.Add("server", c_->answered_address());
    env_->out() << kv.Render() << "\n";
    Table t({"CHECK", "RESULT", "DETAIL"});
    for (const CheckResult& c : checks_) t.AddRow({c.what, c.ok ? "ok" : "FAIL", c.detail});
    env_->out() << t.Render();
  }
  return passed_ ? kExitOk : kExitDenied;
}

}  // namespace

int RunClientRebootDrill(CommandEnv* env, const std::string& client) {
  if (client.empty()) {
    return env->Fail(absl::InvalidArgumentError("--client: a name is required"));
  }
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  return RebootDrill(env, *connection, client).Run();
}

}  // namespace lockwarden::cli

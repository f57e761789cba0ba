// ServerClient: the gateway's connection to lockwarden-server.
//
// Every NLM/NSM request becomes one asynchronous gRPC call through Call().
// The client keeps a list of server addresses and follows the leader:
//   - UNAVAILABLE (server down, failover in progress) or DEADLINE_EXCEEDED:
//     retry, trying the next address, with backoff;
//   - FAILED_PRECONDITION with trailing metadata `lockwarden-leader-address`
//     (a standby): retry at that address at once.
// Retries stop after `failover_wait_ms` in total; the caller then answers the
// NFS client with DENIED_NOLOCKS so its lockd retries later. Retrying a
// mutation is safe because the request (and its request_id) is resent
// unchanged and the server deduplicates request ids durably.
//
// Thread-safety: all methods may be called from any thread. Completion
// callbacks run on gRPC's callback threads or the retry timer thread and
// must not block.
#ifndef LOCKWARDEN_GATEWAY_CLIENT_SERVER_CLIENT_H_
#define LOCKWARDEN_GATEWAY_CLIENT_SERVER_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "lockwarden/v1/monitor_service.grpc.pb.h"

namespace lockwarden::gateway {

inline constexpr char kLeaderAddressMetadata[] = "lockwarden-leader-address";
// Pending retries at once; beyond it calls fail at once (RESOURCE_EXHAUSTED).
inline constexpr size_t kRetryQueueMax = 10'000;

struct ServerClientOptions {
  std::vector<std::string> servers;  // host:port, at least one.
  int64_t rpc_timeout_ms = 2000;     // One attempt.
  int64_t failover_wait_ms = 5000;   // All attempts of one call together.
  int64_t backoff_initial_ms = 25;
  int64_t backoff_max_ms = 500;
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // Default insecure.
};

// Parses "host:port[,host:port...]".
absl::StatusOr<std::vector<std::string>> ParseServerList(const std::string& text);

// True for the gRPC codes after which the same request may be resent.
bool IsRetryable(const grpc::Status& status);

class ServerClient {
 public:
  struct Stubs {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::LockService::Stub> lock;
    std::unique_ptr<v1::MonitorService::Stub> monitor;
  };

  // Starts one attempt of a call: must start the async RPC on `stubs` with
  // `ctx` and call `done` once with its status.
  template <typename Response>
  using Invoke = std::function<void(Stubs& stubs, grpc::ClientContext* ctx,
                                    Response* response,
                                    std::function<void(grpc::Status)> done)>;

  explicit ServerClient(ServerClientOptions options);
  ~ServerClient();
  ServerClient(const ServerClient&) = delete;
  ServerClient& operator=(const ServerClient&) = delete;

  // Runs `invoke` until it succeeds, fails for good, or the failover wait is
  // used up; then `done(status, response)` exactly once.
  template <typename Response>
  void Call(Invoke<Response> invoke,
            std::function<void(const grpc::Status&, const Response&)> done);

  // The stubs of the current leader candidate (for streams).
  Stubs& Current();
  // Moves to `leader` if given (and known or new), else to the next address.
  void Rotate(const std::string& leader = "");

  const ServerClientOptions& options() const { return options_; }

  // Runs `fn` after `delay_ms` on the retry thread; false if the queue is
  // full or the client is stopping. `fn` must not block.
  bool Schedule(int64_t delay_ms, std::function<void()> fn);

 private:
  template <typename Response>
  struct Attempt;

  void TimerLoop();
  Stubs& StubsFor(const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ServerClientOptions options_;
  absl::Mutex mu_;
  std::vector<std::string> servers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Stubs>> stubs_ ABSL_GUARDED_BY(mu_);
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;

  struct Timer {
    std::chrono::steady_clock::time_point at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Timer& o) const { return at > o.at || (at == o.at && seq > o.seq); }
  };
  absl::Mutex timer_mu_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_
      ABSL_GUARDED_BY(timer_mu_);
  uint64_t timer_seq_ ABSL_GUARDED_BY(timer_mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(timer_mu_) = false;
  bool wake_ ABSL_GUARDED_BY(timer_mu_) = false;
  std::thread timer_thread_;
};

template <typename Response>
struct ServerClient::Attempt : std::enable_shared_from_this<Attempt<Response>> {
  ServerClient* client;
  Invoke<Response> invoke;
  std::function<void(const grpc::Status&, const Response&)> done;
  std::chrono::steady_clock::time_point give_up_at;
  int64_t backoff_ms = 0;
  std::unique_ptr<grpc::ClientContext> ctx;
  Response response;

  void Start() {
    ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(client->options_.rpc_timeout_ms));
    response = Response();
    auto self = this->shared_from_this();
    Stubs& stubs = client->Current();
    invoke(stubs, ctx.get(), &response,
           [self](grpc::Status status) { self->Finished(std::move(status)); });
  }

  void Finished(grpc::Status status) {
    if (status.ok() || !IsRetryable(status) ||
        std::chrono::steady_clock::now() >= give_up_at) {
      done(status, response);
      return;
    }
    std::string leader;
    const auto& trailers = ctx->GetServerTrailingMetadata();
    auto it = trailers.find(kLeaderAddressMetadata);
    if (it != trailers.end()) leader.assign(it->second.data(), it->second.size());
    client->Rotate(leader);
    const int64_t delay = leader.empty() ? backoff_ms : 0;
    backoff_ms = std::min(std::max(backoff_ms * 2, client->options_.backoff_initial_ms),
                          client->options_.backoff_max_ms);
    auto self = this->shared_from_this();
    if (!client->Schedule(delay, [self] { self->Start(); })) {
      done(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "gateway retry queue full"),
           response);
    }
  }
};

template <typename Response>
void ServerClient::Call(Invoke<Response> invoke,
                        std::function<void(const grpc::Status&, const Response&)> done) {
  auto attempt = std::make_shared<Attempt<Response>>();
  attempt->client = this;
  attempt->invoke = std::move(invoke);
  attempt->done = std::move(done);
  attempt->give_up_at = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(options_.failover_wait_ms);
  attempt->backoff_ms = options_.backoff_initial_ms;
  attempt->Start();
}

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_CLIENT_SERVER_CLIENT_H_

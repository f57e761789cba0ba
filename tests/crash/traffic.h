// Random client traffic for crash rounds: N lanes (threads), each with its
// own channel, issue seeded random LOCK (non-blocking and blocking), UNLOCK
// and CANCEL over a small space (a few files and owners, ranges in
// [0, range_limit) plus some length-0 "to end of file" ranges), each with a
// fresh request_id; one more lane watches the grant stream and acknowledges
// the grants (mostly DELIVERED, some REFUSED). Every operation is recorded
// in the History with its invoke and completion times.
//
// A lane stops at its first RPC error (the server was killed: the outcome of
// that call is unknown, and so is everything after it), at Stop(), or after
// ops_per_lane_max operations.
//
// Thread-safety: Start/Stop/TakeHistory from one thread; the lanes write
// their own slots of the history only.
#ifndef LOCKWARDEN_TESTS_CRASH_TRAFFIC_H_
#define LOCKWARDEN_TESTS_CRASH_TRAFFIC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/common/server_process.h"
#include "tests/common/stubs.h"
#include "tests/crash/history.h"

namespace lockwarden::crash {

// A blocked request a lane may CANCEL.
struct CancelTarget {
  std::string fh;
  v1::LockOwner owner;
  v1::ByteRange range;
  bool exclusive = false;
};

struct TrafficOptions {
  int lanes = 8;
  int files = 4;
  int owners = 6;
  uint64_t range_limit = 64;
  std::string gateway = "gw-crash";
  // Bounds one round's history (and the checker's replay).
  int ops_per_lane_max = 5000;
  absl::Duration rpc_timeout = absl::Seconds(10);
  bool ack_grants = true;
  // Waiters left by earlier rounds, offered to every lane as CANCEL targets
  // (otherwise they would only ever leave the queue by being granted).
  std::vector<CancelTarget> waiting;
};

// Owner i of the traffic space: clients are shared by two owners (two
// processes of one host conflict, as in NLM).
v1::LockOwner TrafficOwner(int i);
std::string TrafficFile(int i);

// Sends one request and records it as an Op of `lane` (acked with its
// canonical reply, or unknown with the error).
Op Invoke(testing::Stubs& stubs, int lane, Request request, absl::Duration timeout);

class Traffic {
 public:
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>()>;

  Traffic(TrafficOptions options, uint64_t seed, ChannelFactory channels,
          testing::RequestIdGenerator* ids);
  ~Traffic();

  void Start();
  // Asks every lane to stop, cancels the grant stream, joins.
  void Stop();
  // The recorded history (after Stop()).
  History TakeHistory();
  // Operations completed so far (acknowledged), all lanes.
  uint64_t acked() const { return acked_.load(); }

 private:
  void RunLane(int lane);
  void RunAcker(int lane);
  Op Call(testing::Stubs& stubs, int lane, Request request);

  const TrafficOptions options_;
  const uint64_t seed_;
  const ChannelFactory channels_;
  testing::RequestIdGenerator* const ids_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> acked_{0};
  std::vector<History> lanes_;  // One slot per lane; written by its thread.
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  grpc::ClientContext* stream_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace lockwarden::crash

#endif  // LOCKWARDEN_TESTS_CRASH_TRAFFIC_H_

// Value types of the lock core: the commands it applies, the replies and
// events it produces, and the options that bound it. Plain structs with no
// behaviour, so the service layer can map the gRPC API to and from them
// without the core ever seeing a proto.
//
// Thread-safety: plain values; copy or share them read-only across threads.
#ifndef LOCKWARDEN_SERVER_CORE_TYPES_H_
#define LOCKWARDEN_SERVER_CORE_TYPES_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/mutation.h"

namespace lockwarden::core {

// Addresses kept per client (most recent first): a multi-homed client is
// seen from a few; more would only be stale.
inline constexpr size_t kClientAddressesMax = 4;
// Longest address accepted (an IPv6 text form with zone fits in 64).
inline constexpr size_t kClientAddressMaxBytes = 64;

// The NLM lock owner: caller_name + svid + oh. Two svids on one host are two
// owners (their locks conflict); one owner's locks never conflict with each
// other and merge.
struct Owner {
  std::string client;  // NLM caller_name (also the NSM mon_name of the host).
  uint32_t svid = 0;
  std::string oh;  // Opaque owner handle bytes.

  friend bool operator==(const Owner& a, const Owner& b) {
    return a.svid == b.svid && a.client == b.client && a.oh == b.oh;
  }
  friend bool operator!=(const Owner& a, const Owner& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const Owner& o) {
    return H::combine(std::move(h), o.client, o.svid, o.oh);
  }
};

// A byte range as NLM4 carries it. length 0 means "to end of file";
// offset + length past 2^64 is clamped to end at 2^64-1 (inclusive), which
// is the same set of bytes as length 0. Ranges the core reports use
// length 0 whenever the range reaches byte 2^64-1.
struct Range {
  uint64_t offset = 0;
  uint64_t length = 0;

  friend bool operator==(const Range& a, const Range& b) {
    return a.offset == b.offset && a.length == b.length;
  }
};

enum class LockStatus : uint8_t {
  kGranted = 0,   // Success (also: UNLOCK of nothing, UNSHARE of nothing).
  kDenied = 1,    // Conflict (holder set), or CANCEL with no match.
  kBlocked = 2,   // Queued; a Granted event follows.
  kDeadlock = 3,  // Blocking would close a cycle in the wait-for graph.
  kGrace = 4,     // Refused because of (or outside) the grace period.
  kNoLocks = 5,   // A named limit was reached (RESOURCE_EXHAUSTED).
  kInvalid = 6,   // Malformed command (message says which field).
  kNotFound = 7,  // Ack/force-release of something that does not exist.
};
const char* LockStatusName(LockStatus s);

// NLM share access / deny modes (fsh_access, fsh_mode): bit 1 = read,
// bit 2 = write.
enum class ShareMode : uint8_t { kNone = 0, kRead = 1, kWrite = 2, kReadWrite = 3 };

// NSM my_id: where the registering lockd wants the status callback.
struct MonitorId {
  std::string my_name;
  uint32_t my_prog = 0;
  uint32_t my_vers = 0;
  uint32_t my_proc = 0;

  friend bool operator==(const MonitorId& a, const MonitorId& b) {
    return a.my_prog == b.my_prog && a.my_vers == b.my_vers &&
           a.my_proc == b.my_proc && a.my_name == b.my_name;
  }
};

// ---- Commands -------------------------------------------------------------
// Every mutating command carries `request_id`: when non-empty, a repeat of a
// remembered id returns the recorded reply and changes nothing. Ids must be
// unique across gateways (prefix them with the gateway instance).
// `gateway` is the gateway identity (the name clients mount) that took the
// request.

struct LockCmd {  // NLM LOCK / NM_LOCK
  std::string request_id;
  std::string gateway;
  std::string fh;  // 1..64 bytes.
  Owner owner;
  Range range;
  bool exclusive = false;
  bool block = false;
  bool reclaim = false;
  // NLM LOCK (true): the client is monitored, so its SM_NOTIFY releases
  // the lock. NM_LOCK (false): only FREE_ALL (or an admin) releases it.
  bool monitored = true;
  int32_t client_state = 0;  // lockargs.state; 0 = not reported.
  // Source address the gateway saw the request come from (may be empty):
  // recorded with the client's NSM state, so an SM_NOTIFY can still reach
  // a client whose mon_name does not resolve (a pod's view of DNS rarely
  // knows clients' node names).
  std::string client_address;
  std::string callback;      // Echoed in the Granted event (blocking only).
  std::string cookie;        // Echoed in the Granted event.
};

struct UnlockCmd {
  std::string request_id;
  std::string gateway;
  std::string fh;
  Owner owner;
  Range range;
};

struct CancelCmd {  // Removes the waiter with the same owner/fh/range/mode.
  std::string request_id;
  std::string gateway;
  std::string fh;
  Owner owner;
  Range range;
  bool exclusive = false;
};

struct TestQuery {  // Read-only: see LockCore::Test.
  std::string gateway;
  std::string fh;
  Owner owner;
  Range range;
  bool exclusive = false;
};

struct ShareCmd {
  std::string request_id;
  std::string gateway;
  std::string fh;
  std::string client;  // caller_name
  std::string oh;
  ShareMode access = ShareMode::kNone;
  ShareMode deny = ShareMode::kNone;
  bool reclaim = false;
  int32_t client_state = 0;
};

struct UnshareCmd {
  std::string request_id;
  std::string gateway;
  std::string fh;
  std::string client;
  std::string oh;
};

struct FreeAllCmd {  // NLM FREE_ALL
  std::string request_id;
  std::string gateway;
  std::string client;
  int32_t state = 0;
};

struct MonCmd {
  std::string request_id;
  std::string gateway;
  std::string mon_name;
  MonitorId my_id;
  std::string priv;  // Exactly 16 bytes.
};

struct UnmonCmd {
  std::string request_id;
  std::string gateway;
  std::string mon_name;
  MonitorId my_id;
};

struct UnmonAllCmd {
  std::string request_id;
  std::string gateway;
  MonitorId my_id;
};

struct NotifyCmd {  // SM_NOTIFY received from host `mon_name`.
  std::string request_id;
  std::string gateway;
  std::string mon_name;
  int32_t state = 0;
};

struct SimuCrashCmd {  // SM_SIMU_CRASH: the identity's lock state is lost.
  std::string request_id;
  std::string gateway;
};

struct ResetGatewayCmd {  // Admin: same effect as SimuCrash.
  std::string request_id;
  std::string gateway;
};

enum class AckOutcome : uint8_t {
  kDelivered = 0,     // Granted: the client accepted -> lock confirmed.
  kRefused = 1,       // Granted: the client no longer wants it -> released.
  kFailedGiveUp = 2,  // Delivery abandoned -> a Granted lock is released.
};

struct AckEventCmd {
  std::string request_id;
  std::string gateway;
  uint64_t sequence = 0;
  AckOutcome outcome = AckOutcome::kDelivered;
};

struct TickCmd {};  // Expire grants and end grace periods due at now_ms.

struct EndGraceCmd {  // Admin: end a gateway identity's grace period now.
  std::string request_id;
  std::string gateway;
};

// Admin: drain (or undrain) a gateway identity for maintenance. While
// draining, a blocking LOCK through it that cannot be granted at once is
// answered like a non-blocking one (DENIED): no new waiter queues, so its
// queue only empties. Persisted in the identity's record (codec.h).
struct DrainGatewayCmd {
  std::string request_id;
  std::string gateway;
  bool drain = true;
};

struct ForceReleaseCmd {  // Admin.
  enum class Target : uint8_t { kLock = 0, kOwner = 1, kClient = 2, kFile = 3 };
  std::string request_id;
  Target target = Target::kLock;
  uint64_t fencing_token = 0;  // kLock
  Owner owner;                 // kOwner (locks + waiters)
  std::string client;          // kClient (locks + shares + waiters)
  std::string fh;              // kFile (locks + shares + waiters)
};

using Command =
    std::variant<LockCmd, UnlockCmd, CancelCmd, ShareCmd, UnshareCmd,
                 FreeAllCmd, MonCmd, UnmonCmd, UnmonAllCmd, NotifyCmd,
                 SimuCrashCmd, ResetGatewayCmd, AckEventCmd, TickCmd,
                 ForceReleaseCmd, EndGraceCmd,
                 DrainGatewayCmd>;  // Append only: the index is
                                    // persisted (dedup).

// ---- Replies and events ---------------------------------------------------

struct Holder {  // The conflicting lock reported with kDenied.
  Owner owner;
  Range range;
  bool exclusive = false;

  friend bool operator==(const Holder& a, const Holder& b) {
    return a.owner == b.owner && a.range == b.range &&
           a.exclusive == b.exclusive;
  }
};

struct Reply {
  LockStatus status = LockStatus::kGranted;
  std::string message;            // Why, for kInvalid / kNoLocks / kGrace.
  std::optional<Holder> holder;   // kDenied on LOCK / TEST.
  uint64_t fencing_token = 0;     // kGranted LOCK: the token of the lock.
  int32_t nsm_state = 0;          // Mon/Unmon/UnmonAll/Stat/SimuCrash/Reset.
  bool stale = false;             // Notify: nothing newer, nothing released.
  uint32_t released = 0;          // Locks + shares + waiters released.

  friend bool operator==(const Reply& a, const Reply& b) {
    return a.status == b.status && a.message == b.message &&
           a.holder == b.holder && a.fencing_token == b.fencing_token &&
           a.nsm_state == b.nsm_state && a.stale == b.stale &&
           a.released == b.released;
  }
};

struct GrantedEvent {  // A blocked LOCK became an (unconfirmed) lock.
  std::string fh;
  Owner owner;
  Range range;
  bool exclusive = false;
  uint64_t fencing_token = 0;
  int32_t client_state = 0;
  std::string callback;
  std::string cookie;
};

struct SmNotifyEvent {  // Send SM_NOTIFY{mon_name, state} to host `target`.
  std::string target;    // A mon_name registered on the gateway identity.
  std::string mon_name;  // The gateway identity itself.
  int32_t state = 0;     // Its new NSM state number.
  // Where `target` was last seen (LOCK source addresses), most recent first;
  // at most kClientAddressesMax.
  std::vector<std::string> addresses;
};

struct StatusCallbackEvent {  // statd -> lockd callback for a registration.
  std::string mon_name;       // The host whose SM_NOTIFY was received.
  int32_t state = 0;
  MonitorId my_id;
  std::string priv;
};

struct Event {
  uint64_t sequence = 0;  // Global, strictly increasing, never reused.
  std::string gateway;    // Outbox (gateway identity) it belongs to.
  int64_t created_ms = 0;
  std::variant<GrantedEvent, SmNotifyEvent, StatusCallbackEvent> body;
};

// What one Apply produced: the reply, the mutations to commit atomically
// before the reply (and the events) may be released, and new events.
struct Effects {
  Reply reply;
  Delta delta;
  std::vector<Event> events;
};

// ---- Options --------------------------------------------------------------

struct CoreOptions {
  int64_t grant_timeout_ms = 60000;  // Unconfirmed grant -> released.
  int64_t grace_period_ms = 90000;   // After a state-number bump.

  // Input sizes (NLM/NSM protocol maxima).
  size_t fh_bytes_max = 64;         // NFSv3 file handle.
  size_t name_bytes_max = 1024;     // caller_name, mon_name, my_name, ids.
  size_t opaque_bytes_max = 1024;   // oh, cookie, callback.

  // Table limits: going past one answers kNoLocks, never grows.
  size_t locks_max = 4'000'000;
  size_t waiters_max = 100'000;
  size_t waiters_per_file_max = 1'000;
  size_t shares_max = 1'000'000;
  size_t owners_max = 1'000'000;
  size_t clients_max = 1'000'000;   // Clients with a recorded NSM state.
  size_t gateways_max = 10'000;
  size_t monitors_max = 1'000'000;
  size_t events_per_gateway_max = 100'000;
  size_t dedup_entries_max = 100'000;
};

}  // namespace lockwarden::core

#endif  // LOCKWARDEN_SERVER_CORE_TYPES_H_

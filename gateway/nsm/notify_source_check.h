// NotifySourceCheck: decides whether an incoming SM_NOTIFY plausibly comes
// from the host it names.
//
// SM_NOTIFY is unauthenticated: whoever sends "mon_name X rebooted, state
// N" makes the server drop X's locks (chimera-nas/chimera#1012). In strict
// mode a notify is accepted only if its source address is
//   1. the address recorded for mon_name in the ClientAddressBook (the
//      address its NLM requests came from), or
//   2. mon_name itself, when mon_name is an IP literal, or
//   3. one of the addresses mon_name resolves to (getaddrinfo on the
//      resolver's threads, bounded by `resolve_timeout`).
// Anything else, including a name that does not resolve in time, is
// rejected with a reason for the log. Trust-name mode accepts every notify
// (the reason says so) for deployments behind NAT or with names that do
// not resolve from the gateway.
//
//   NotifySourceCheck check(/*strict=*/true, &book, &resolver,
//                           absl::Seconds(5));
//   check.Check("client1", "198.18.0.7", [](SourceVerdict v) { ... });
//
// Thread safety: thread-safe; `done` runs on the calling thread (cases 1,
// 2 and trust-name mode, before Check returns) or on a resolver/scheduler
// thread, exactly once, and must not block.
#ifndef LOCKWARDEN_GATEWAY_NSM_NOTIFY_SOURCE_CHECK_H_
#define LOCKWARDEN_GATEWAY_NSM_NOTIFY_SOURCE_CHECK_H_

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "gateway/nsm/client_address_book.h"
#include "gateway/nsm/host_resolver.h"

namespace lockwarden::gateway::nsm {

struct SourceVerdict {
  bool accepted = false;
  std::string reason;  // why, for the log line
};

class NotifySourceCheck {
 public:
  // Not owned; must outlive every Check's callback.
  NotifySourceCheck(bool strict, const ClientAddressBook* addresses,
                    HostResolver* resolver, absl::Duration resolve_timeout);

  // `source` is the normalised peer address of the SM_NOTIFY.
  void Check(const std::string& mon_name, const std::string& source,
             std::function<void(SourceVerdict)> done) const;

 private:
  const bool strict_;
  const ClientAddressBook* const addresses_;
  HostResolver* const resolver_;
  const absl::Duration resolve_timeout_;
};

}  // namespace lockwarden::gateway::nsm

#endif  // LOCKWARDEN_GATEWAY_NSM_NOTIFY_SOURCE_CHECK_H_

#include "gateway/portmap/rpcbind_registrar.h"

#include <netconfig.h>
#include <rpc/rpc.h>
#include <rpc/rpcb_clnt.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/portmap/portmapper.h"

namespace lockwarden::gateway {
namespace {

struct NetconfigDeleter {
  void operator()(netconfig* n) const { freenetconfigent(n); }
};
using NetconfigPtr = std::unique_ptr<netconfig, NetconfigDeleter>;

absl::StatusOr<NetconfigPtr> Netconfig(const std::string& netid) {
  if (ProtocolForNetid(netid) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported netid '", netid, "'"));
  }
  NetconfigPtr n(getnetconfigent(netid.c_str()));
  if (n == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("netid '", netid, "' is not in /etc/netconfig"));
  }
  return n;
}

// Why the last libtirpc rpcbind call failed, as a sentence.
absl::Status RpcbindError(absl::string_view what) {
  const char* reason = clnt_spcreateerror("");
  std::string detail = reason != nullptr ? reason : "";
  // clnt_spcreateerror prefixes ": " and ends with a newline.
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) {
    detail.pop_back();
  }
  if (rpc_createerr.cf_stat == RPC_SUCCESS) {
    return absl::UnavailableError(
        absl::StrCat(what, ": rpcbind refused the request", detail));
  }
  return absl::UnavailableError(absl::StrCat(
      what, ": host rpcbind is not reachable (is rpcbind running?)", detail));
}

}  // namespace

RpcbindRegistrar::~RpcbindRegistrar() { UnregisterAll().IgnoreError(); }

absl::Status RpcbindRegistrar::Register(uint32_t prog, uint32_t vers,
                                        const std::string& netid,
                                        uint16_t port) {
  absl::StatusOr<NetconfigPtr> nconf = Netconfig(netid);
  if (!nconf.ok()) return nconf.status();
  const bool v6 = netid == "udp6" || netid == "tcp6";
  const std::string uaddr = ToUniversalAddress(v6 ? "::" : "0.0.0.0", port);
  absl::MutexLock lock(&mu_);
  netbuf* addr = uaddr2taddr(nconf->get(), uaddr.c_str());
  if (addr == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot convert universal address ", uaddr));
  }
  // rpcbind refuses SET over an existing mapping: clear it first (failure
  // is expected when there is none).
  rpc_createerr.cf_stat = RPC_SUCCESS;
  rpcb_unset(prog, vers, nconf->get());
  rpc_createerr.cf_stat = RPC_SUCCESS;
  const bool ok = rpcb_set(prog, vers, nconf->get(), addr);
  free(addr->buf);
  free(addr);
  const std::string what = absl::StrCat("rpcbind SET ", prog, " v", vers, " ",
                                        netid, " port ", port);
  if (!ok) return RpcbindError(what);
  registered_.push_back(PortRegistration{prog, vers, netid, port, ""});
  LogEvent(LogLevel::kInfo, "rpcbind_registered",
           {{"prog", prog}, {"vers", vers}, {"netid", netid},
            {"port", static_cast<unsigned>(port)}});
  return absl::OkStatus();
}

absl::Status RpcbindRegistrar::UnregisterLocked(uint32_t prog, uint32_t vers,
                                                const std::string& netid) {
  absl::StatusOr<NetconfigPtr> nconf = Netconfig(netid);
  if (!nconf.ok()) return nconf.status();
  rpc_createerr.cf_stat = RPC_SUCCESS;
  const bool ok = rpcb_unset(prog, vers, nconf->get());
  registered_.erase(
      std::remove_if(registered_.begin(), registered_.end(),
                     [&](const PortRegistration& r) {
                       return r.prog == prog && r.vers == vers &&
                              r.netid == netid;
                     }),
      registered_.end());
  if (!ok) {
    return RpcbindError(
        absl::StrCat("rpcbind UNSET ", prog, " v", vers, " ", netid));
  }
  return absl::OkStatus();
}

absl::Status RpcbindRegistrar::Unregister(uint32_t prog, uint32_t vers,
                                          const std::string& netid) {
  absl::MutexLock lock(&mu_);
  return UnregisterLocked(prog, vers, netid);
}

absl::Status RpcbindRegistrar::UnregisterAll() {
  absl::MutexLock lock(&mu_);
  absl::Status first;
  std::vector<PortRegistration> all = registered_;
  for (const PortRegistration& r : all) {
    absl::Status s = UnregisterLocked(r.prog, r.vers, r.netid);
    if (first.ok()) first = s;
  }
  return first;
}

}  // namespace lockwarden::gateway

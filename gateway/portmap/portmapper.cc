#include "gateway/portmap/portmapper.h"

#include <arpa/inet.h>
#include <rpc/pmap_prot.h>
#include <netconfig.h>
#include <rpc/rpcb_prot.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway {
namespace {

constexpr uint32_t kPmapVersion = 2;
constexpr uint32_t kRpcbindV3 = 3;
constexpr uint32_t kRpcbindV4 = 4;

bool IsIpv6Netid(const std::string& netid) {
  return netid == "udp6" || netid == "tcp6";
}

bool IsIpv6Literal(const std::string& ip) {
  return ip.find(':') != std::string::npos;
}

// Registers, remembering the first failure.
void Add(Dispatcher& d, uint32_t vers, uint32_t proc, ProcedureSpec spec,
         absl::Status* status) {
  absl::Status s =
      d.RegisterProcedure(kPortmapProgram, vers, proc, std::move(spec));
  if (status->ok()) *status = s;
}

ProcedureSpec NullProcedure() {
  ProcedureSpec spec = MakeVoidProcedure(
      "PMAP_NULL", [](std::unique_ptr<RpcCall> call) {
        call->Reply(nullptr).IgnoreError();
      });
  return spec;
}

// Portmapper answers are cheap and idempotent: no DRC.
ProcedureSpec NoDrc(ProcedureSpec spec) {
  spec.use_drc = false;
  return spec;
}

void ReplyBool(RpcCall& call, bool value) {
  bool_t result = value ? TRUE : FALSE;
  call.Reply(&result).IgnoreError();
}

}  // namespace

std::string ToUniversalAddress(const std::string& ip, uint16_t port) {
  return absl::StrCat(ip, ".", port >> 8, ".", port & 0xff);
}

absl::StatusOr<std::pair<std::string, uint16_t>> FromUniversalAddress(
    const std::string& uaddr) {
  const size_t low_dot = uaddr.rfind('.');
  const size_t high_dot =
      low_dot == std::string::npos || low_dot == 0
          ? std::string::npos
          : uaddr.rfind('.', low_dot - 1);
  uint32_t hi = 0, lo = 0;
  if (high_dot == std::string::npos ||
      !absl::SimpleAtoi(uaddr.substr(high_dot + 1, low_dot - high_dot - 1),
                        &hi) ||
      !absl::SimpleAtoi(uaddr.substr(low_dot + 1), &lo) || hi > 255 ||
      lo > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a universal address: '", uaddr, "'"));
  }
  return std::make_pair(uaddr.substr(0, high_dot),
                        static_cast<uint16_t>(hi * 256 + lo));
}

Portmapper::Portmapper(PortmapperOptions options)
    : options_(std::move(options)) {}

std::string Portmapper::HostFor(const CallContext& context, bool ipv6) const {
  const std::string& advertised =
      ipv6 ? options_.advertised_ipv6 : options_.advertised_ipv4;
  if (!advertised.empty()) return advertised;
  const std::string& local = context.local_address;
  if (!local.empty() && local != "0.0.0.0" && local != "::" &&
      IsIpv6Literal(local) == ipv6) {
    return local;
  }
  if (context.peer_is_loopback) return ipv6 ? "::1" : "127.0.0.1";
  return ipv6 ? "::" : "0.0.0.0";
}

absl::Status Portmapper::AddService(uint32_t prog, uint32_t vers,
                                    uint16_t port, bool ipv6) {
  std::vector<std::string> netids = {"udp", "tcp"};
  if (ipv6) {
    netids.push_back("udp6");
    netids.push_back("tcp6");
  }
  for (const std::string& netid : netids) {
    absl::Status s = table_.Replace(
        PortRegistration{prog, vers, netid, port, options_.owner});
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Portmapper::AddSelf(uint16_t port, bool ipv6) {
  for (uint32_t vers : {kPmapVersion, kRpcbindV3, kRpcbindV4}) {
    absl::Status s = AddService(kPortmapProgram, vers, port, ipv6);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void Portmapper::RegisterV2(Dispatcher& d, absl::Status* status) {
  Add(d, kPmapVersion, PMAPPROC_NULL, NullProcedure(), status);
  auto set_or_unset = [this](bool set) {
    return [this, set](std::unique_ptr<RpcCall> call) {
      const pmap* m = call->args<pmap>();
      if (!call->context().peer_is_loopback) {
        LogEvent(LogLevel::kWarn, "pmap_set_refused",
                 {{"peer", call->context().peer_address},
                  {"prog", static_cast<uint64_t>(m->pm_prog)}});
        ReplyBool(*call, false);
        return;
      }
      const std::string netid = NetidForProtocol(m->pm_prot);
      if (set) {
        ReplyBool(*call, m->pm_port <= 65535 &&
                             table_
                                 .Set(PortRegistration{
                                     static_cast<uint32_t>(m->pm_prog),
                                     static_cast<uint32_t>(m->pm_vers), netid,
                                     static_cast<uint16_t>(m->pm_port),
                                     "pmap"})
                                 .ok());
      } else {
        // PMAP UNSET ignores the protocol: both udp and tcp go.
        const size_t n =
            table_.Unset(m->pm_prog, m->pm_vers, "udp") +
            table_.Unset(m->pm_prog, m->pm_vers, "tcp");
        ReplyBool(*call, n > 0);
      }
    };
  };
  Add(d, kPmapVersion, PMAPPROC_SET,
      NoDrc(MakeProcedure("PMAP_SET", xdr_pmap, xdr_bool, set_or_unset(true))),
      status);
  Add(d, kPmapVersion, PMAPPROC_UNSET,
      NoDrc(MakeProcedure("PMAP_UNSET", xdr_pmap, xdr_bool,
                          set_or_unset(false))),
      status);
  Add(d, kPmapVersion, PMAPPROC_GETPORT,
      NoDrc(MakeProcedure(
          "PMAP_GETPORT", xdr_pmap, xdr_u_int,
          [this](std::unique_ptr<RpcCall> call) {
            const pmap* m = call->args<pmap>();
            u_int port = table_
                             .Lookup(m->pm_prog, m->pm_vers,
                                     NetidForProtocol(m->pm_prot))
                             .value_or(0);
            call->Reply(&port).IgnoreError();
          })),
      status);
  Add(d, kPmapVersion, PMAPPROC_DUMP,
      NoDrc(MakeVoidArgsProcedure(
          "PMAP_DUMP", xdr_pmaplist, [this](std::unique_ptr<RpcCall> call) {
            // PMAP v2 knows only IPv4 udp/tcp mappings.
            std::vector<PortRegistration> all = table_.Dump();
            std::vector<pmaplist> nodes;
            nodes.reserve(all.size());
            for (const PortRegistration& r : all) {
              if (r.netid != "udp" && r.netid != "tcp") continue;
              pmaplist node{};
              node.pml_map = pmap{r.prog, r.vers, ProtocolForNetid(r.netid),
                                  r.port};
              nodes.push_back(node);
            }
            for (size_t i = 0; i + 1 < nodes.size(); ++i) {
              nodes[i].pml_next = &nodes[i + 1];
            }
            pmaplist* head = nodes.empty() ? nullptr : nodes.data();
            call->Reply(&head).IgnoreError();
          })),
      status);
}

void Portmapper::RegisterRpcbind(Dispatcher& d, uint32_t vers,
                                 absl::Status* status) {
  Add(d, vers, 0, NullProcedure(), status);
  auto set_or_unset = [this](bool set) {
    return [this, set](std::unique_ptr<RpcCall> call) {
      const rpcb* r = call->args<rpcb>();
      if (!call->context().peer_is_loopback) {
        ReplyBool(*call, false);
        return;
      }
      const std::string netid = r->r_netid != nullptr ? r->r_netid : "";
      if (!set) {
        ReplyBool(*call, table_.Unset(r->r_prog, r->r_vers, netid) > 0);
        return;
      }
      absl::StatusOr<std::pair<std::string, uint16_t>> addr =
          FromUniversalAddress(r->r_addr != nullptr ? r->r_addr : "");
      ReplyBool(*call,
                addr.ok() && table_
                                 .Set(PortRegistration{
                                     r->r_prog, r->r_vers, netid,
                                     addr->second,
                                     r->r_owner != nullptr ? r->r_owner : ""})
                                 .ok());
    };
  };
  Add(d, vers, RPCBPROC_SET,
      NoDrc(MakeProcedure("RPCB_SET", xdr_rpcb, xdr_bool, set_or_unset(true))),
      status);
  Add(d, vers, RPCBPROC_UNSET,
      NoDrc(MakeProcedure("RPCB_UNSET", xdr_rpcb, xdr_bool,
                          set_or_unset(false))),
      status);
  auto getaddr = [this](bool exact) {
    return [this, exact](std::unique_ptr<RpcCall> call) {
      const rpcb* r = call->args<rpcb>();
      const std::string netid = r->r_netid != nullptr ? r->r_netid : "";
      std::optional<uint16_t> port =
          table_.Lookup(r->r_prog, r->r_vers, netid, exact);
      // "" means "not registered" in RPCBIND.
      std::string uaddr =
          port.has_value()
              ? ToUniversalAddress(
                    HostFor(call->context(), IsIpv6Netid(netid)), *port)
              : "";
      char* result = uaddr.data();
      call->Reply(&result).IgnoreError();
    };
  };
  Add(d, vers, RPCBPROC_GETADDR,
      NoDrc(MakeProcedure("RPCB_GETADDR", xdr_rpcb, xdr_wrapstring,
                          getaddr(false))),
      status);
  if (vers == kRpcbindV4) {
    Add(d, vers, RPCBPROC_GETVERSADDR,
        NoDrc(MakeProcedure("RPCB_GETVERSADDR", xdr_rpcb, xdr_wrapstring,
                            getaddr(true))),
        status);
    Add(d, vers, RPCBPROC_GETADDRLIST,
        NoDrc(MakeProcedure("RPCB_GETADDRLIST", xdr_rpcb,
                            xdr_rpcb_entry_list_ptr,
                            [this](std::unique_ptr<RpcCall> call) {
                              GetAddrList(std::move(call));
                            })),
        status);
  }
  Add(d, vers, RPCBPROC_DUMP,
      NoDrc(MakeVoidArgsProcedure(
          "RPCB_DUMP", xdr_rpcblist_ptr,
          [this](std::unique_ptr<RpcCall> call) {
            std::vector<PortRegistration> all = table_.Dump();
            // Strings the list points into; reserved so they never move.
            std::vector<std::string> text;
            text.reserve(all.size() * 3);
            std::vector<rp__list> nodes(all.size());
            for (size_t i = 0; i < all.size(); ++i) {
              const PortRegistration& r = all[i];
              text.push_back(r.netid);
              nodes[i].rpcb_map.r_netid = text.back().data();
              text.push_back(ToUniversalAddress(
                  HostFor(call->context(), IsIpv6Netid(r.netid)), r.port));
              nodes[i].rpcb_map.r_addr = text.back().data();
              text.push_back(r.owner);
              nodes[i].rpcb_map.r_owner = text.back().data();
              nodes[i].rpcb_map.r_prog = r.prog;
              nodes[i].rpcb_map.r_vers = r.vers;
              nodes[i].rpcb_next = i + 1 < all.size() ? &nodes[i + 1] : nullptr;
            }
            rpcblist_ptr head = nodes.empty() ? nullptr : nodes.data();
            call->Reply(&head).IgnoreError();
          })),
      status);
}

// Every address of (prog, exact vers), one entry per netid.
void Portmapper::GetAddrList(std::unique_ptr<RpcCall> call) {
  const rpcb* query = call->args<rpcb>();
  std::vector<PortRegistration> matches;
  for (PortRegistration& r : table_.Dump()) {
    if (r.prog == query->r_prog && r.vers == query->r_vers) {
      matches.push_back(std::move(r));
    }
  }
  // Strings the list points into; reserved so they never move.
  std::vector<std::string> text;
  text.reserve(matches.size() * 4);
  std::vector<rpcb_entry_list> nodes(matches.size());
  for (size_t i = 0; i < matches.size(); ++i) {
    const PortRegistration& r = matches[i];
    const bool v6 = IsIpv6Netid(r.netid);
    const bool udp = ProtocolForNetid(r.netid) == IPPROTO_UDP;
    rpcb_entry& e = nodes[i].rpcb_entry_map;
    text.push_back(ToUniversalAddress(HostFor(call->context(), v6), r.port));
    e.r_maddr = text.back().data();
    text.push_back(r.netid);
    e.r_nc_netid = text.back().data();
    e.r_nc_semantics = udp ? NC_TPI_CLTS : NC_TPI_COTS_ORD;
    text.push_back(v6 ? NC_INET6 : NC_INET);
    e.r_nc_protofmly = text.back().data();
    text.push_back(udp ? NC_UDP : NC_TCP);
    e.r_nc_proto = text.back().data();
    nodes[i].rpcb_entry_next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
  }
  rpcb_entry_list_ptr head = nodes.empty() ? nullptr : nodes.data();
  call->Reply(&head).IgnoreError();
}

absl::Status Portmapper::RegisterProcedures(Dispatcher& dispatcher) {
  absl::Status status;
  RegisterV2(dispatcher, &status);
  RegisterRpcbind(dispatcher, kRpcbindV3, &status);
  RegisterRpcbind(dispatcher, kRpcbindV4, &status);
  return status;
}

}  // namespace lockwarden::gateway

#include "gateway/portmap/registration_table.h"

#include <netinet/in.h>

#include "absl/strings/str_cat.h"

namespace lockwarden::gateway {

std::string NetidForProtocol(uint32_t protocol) {
  if (protocol == IPPROTO_UDP) return "udp";
  if (protocol == IPPROTO_TCP) return "tcp";
  return "";
}

uint32_t ProtocolForNetid(const std::string& netid) {
  if (netid == "udp" || netid == "udp6") return IPPROTO_UDP;
  if (netid == "tcp" || netid == "tcp6") return IPPROTO_TCP;
  return 0;
}

absl::Status RegistrationTable::Set(const PortRegistration& r) {
  if (ProtocolForNetid(r.netid) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported netid '", r.netid, "'"));
  }
  if (r.port == 0) return absl::InvalidArgumentError("port 0");
  absl::MutexLock lock(&mu_);
  Key key{r.prog, r.vers, r.netid};
  if (entries_.count(key) > 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "program ", r.prog, " version ", r.vers, " on ", r.netid,
        " is already registered"));
  }
  if (entries_.size() >= kMaxPortRegistrations) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "portmapper table full (", kMaxPortRegistrations, " entries)"));
  }
  entries_.emplace(std::move(key), r);
  return absl::OkStatus();
}

absl::Status RegistrationTable::Replace(const PortRegistration& r) {
  if (ProtocolForNetid(r.netid) == 0 || r.port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad registration: netid '", r.netid, "' port ", r.port));
  }
  absl::MutexLock lock(&mu_);
  Key key{r.prog, r.vers, r.netid};
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    it->second = r;
    return absl::OkStatus();
  }
  if (entries_.size() >= kMaxPortRegistrations) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "portmapper table full (", kMaxPortRegistrations, " entries)"));
  }
  entries_.emplace(std::move(key), r);
  return absl::OkStatus();
}

size_t RegistrationTable::Unset(uint32_t prog, uint32_t vers,
                                const std::string& netid) {
  absl::MutexLock lock(&mu_);
  size_t removed = 0;
  for (auto it = entries_.lower_bound(Key{prog, vers, ""});
       it != entries_.end() && std::get<0>(it->first) == prog &&
       std::get<1>(it->first) == vers;) {
    if (netid.empty() || std::get<2>(it->first) == netid) {
      it = entries_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

std::optional<uint16_t> RegistrationTable::Lookup(uint32_t prog,
                                                  uint32_t vers,
                                                  const std::string& netid,
                                                  bool exact_version) const {
  absl::MutexLock lock(&mu_);
  auto exact = entries_.find(Key{prog, vers, netid});
  if (exact != entries_.end()) return exact->second.port;
  if (exact_version) return std::nullopt;
  for (auto it = entries_.lower_bound(Key{prog, 0, ""});
       it != entries_.end() && std::get<0>(it->first) == prog; ++it) {
    if (std::get<2>(it->first) == netid) return it->second.port;
  }
  return std::nullopt;
}

std::vector<PortRegistration> RegistrationTable::Dump() const {
  absl::MutexLock lock(&mu_);
  std::vector<PortRegistration> out;
  out.reserve(entries_.size());
  for (const auto& [key, r] : entries_) out.push_back(r);
  return out;
}

}  // namespace lockwarden::gateway

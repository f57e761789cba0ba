#include "gateway/nsm/notify_source_check.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lockwarden::gateway::nsm {

NotifySourceCheck::NotifySourceCheck(bool strict,
                                     const ClientAddressBook* addresses,
                                     HostResolver* resolver,
                                     absl::Duration resolve_timeout)
    : strict_(strict),
      addresses_(addresses),
      resolver_(resolver),
      resolve_timeout_(resolve_timeout) {}

void NotifySourceCheck::Check(const std::string& mon_name,
                              const std::string& source,
                              std::function<void(SourceVerdict)> done) const {
  if (!strict_) {
    done(SourceVerdict{true, "trust-name mode"});
    return;
  }
  const std::optional<std::string> recorded = addresses_->Lookup(mon_name);
  if (recorded && *recorded == source) {
    done(SourceVerdict{true, "source is the address recorded for mon_name"});
    return;
  }
  const std::string recorded_text =
      recorded ? absl::StrCat("recorded address ", *recorded)
               : std::string("no recorded address");
  if (std::optional<std::string> literal = AsIpLiteral(mon_name)) {
    if (*literal == source) {
      done(SourceVerdict{true, "mon_name is the source address"});
    } else {
      done(SourceVerdict{false, absl::StrCat("mon_name is the address ",
                                             *literal, ", not the source; ",
                                             recorded_text)});
    }
    return;
  }
  resolver_->Resolve(
      mon_name, resolve_timeout_,
      [source, recorded_text, done = std::move(done)](
          absl::StatusOr<std::vector<std::string>> resolved) {
        if (!resolved.ok()) {
          done(SourceVerdict{false, absl::StrCat(resolved.status().message(),
                                                 "; ", recorded_text)});
          return;
        }
        if (std::find(resolved->begin(), resolved->end(), source) !=
            resolved->end()) {
          done(SourceVerdict{true, "mon_name resolves to the source address"});
          return;
        }
        done(SourceVerdict{
            false, absl::StrCat("mon_name resolves to ",
                                absl::StrJoin(*resolved, ","),
                                ", not the source; ", recorded_text)});
      });
}

}  // namespace lockwarden::gateway::nsm

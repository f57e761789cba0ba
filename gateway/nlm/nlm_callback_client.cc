#include "gateway/nlm/nlm_callback_client.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/nlm/version.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway::nlm {
namespace {

// Pre-encoded XDR arguments: written as they are (they are a multiple of
// four bytes, so xdr_opaque adds no padding).
bool_t XdrRawBytes(XDR* xdrs, std::string* bytes) {
  if (xdrs->x_op != XDR_ENCODE) return FALSE;
  return xdr_opaque(xdrs, bytes->data(), static_cast<u_int>(bytes->size()));
}

}  // namespace

NlmCallbackClient::NlmCallbackClient(RpcClient* rpc,
                                     NlmCallbackClientOptions options)
    : rpc_(rpc), options_(std::move(options)) {}

CallCredentials NlmCallbackClient::Credentials() const {
  AuthSysParams p;
  p.machine_name = options_.machine_name.substr(0, kMaxAuthSysMachineNameBytes);
  return CallCredentials::Sys(std::move(p));
}

void NlmCallbackClient::ResolvePort(
    const NlmPeer& peer, std::function<void(absl::StatusOr<uint16_t>)> done) {
  if (peer.port != 0) {
    done(peer.port);
    return;
  }
  const Key key{peer.address, peer.vers, peer.transport};
  std::optional<uint16_t> cached;
  {
    absl::MutexLock lock(&mu_);
    auto it = ports_.find(key);
    if (it != ports_.end()) {
      if (it->second.expires > absl::Now()) {
        cached = it->second.port;
      } else {
        ports_.erase(it);
      }
    }
  }
  if (cached.has_value()) {
    done(*cached);
    return;
  }
  rpc_->GetPort(
      peer.address, kNlmProgram, peer.vers, peer.transport,
      [this, key, done = std::move(done)](absl::StatusOr<uint16_t> port) {
        if (port.ok()) {
          absl::MutexLock lock(&mu_);
          if (ports_.size() >= options_.port_cache_entries_max) {
            // Bounded: drop everything expired, and if that is not enough
            // one arbitrary entry (a cache miss only costs a lookup).
            const absl::Time now = absl::Now();
            absl::erase_if(ports_, [now](const auto& kv) {
              return kv.second.expires <= now;
            });
            if (ports_.size() >= options_.port_cache_entries_max) {
              ports_.erase(ports_.begin());
            }
          }
          ports_[key] = Entry{*port, absl::Now() + options_.port_cache_ttl};
        }
        done(std::move(port));
      },
      options_.rpcbind_port);
}

void NlmCallbackClient::ForgetPort(const NlmPeer& peer) {
  absl::MutexLock lock(&mu_);
  ports_.erase(Key{peer.address, peer.vers, peer.transport});
}

size_t NlmCallbackClient::cached_ports() const {
  absl::MutexLock lock(&mu_);
  return ports_.size();
}

void NlmCallbackClient::WithPort(const NlmPeer& peer,
                                 std::function<void(uint16_t)> fn,
                                 std::function<void(absl::Status)> fail) {
  ResolvePort(peer, [fn = std::move(fn), fail = std::move(fail),
                     address = peer.address](absl::StatusOr<uint16_t> port) {
    if (!port.ok()) {
      fail(absl::Status(port.status().code(),
                        absl::StrCat("NLM port of ", address, ": ",
                                     port.status().message())));
      return;
    }
    fn(*port);
  });
}

void NlmCallbackClient::Send(const NlmPeer& peer, uint32_t proc,
                             xdrproc_t args_encoder, const void* args,
                             std::function<void(absl::Status)> done) {
  absl::StatusOr<std::string> encoded = XdrEncode(args_encoder, args);
  if (!encoded.ok()) {
    done(encoded.status());
    return;
  }
  auto bytes = std::make_shared<std::string>(*std::move(encoded));
  auto shared_done =
      std::make_shared<std::function<void(absl::Status)>>(std::move(done));
  WithPort(
      peer,
      [this, peer, proc, bytes, shared_done](uint16_t port) {
        rpc_->Send(RpcEndpoint{peer.address, port, peer.transport},
                   CallTarget{kNlmProgram, peer.vers, proc}, Credentials(),
                   XdrProc(XdrRawBytes), bytes.get(),
                   [this, peer, shared_done](absl::Status s) {
                     if (!s.ok()) ForgetPort(peer);
                     (*shared_done)(std::move(s));
                   });
      },
      [shared_done](absl::Status s) { (*shared_done)(std::move(s)); });
}

void NlmCallbackClient::Call(
    const NlmPeer& peer, uint32_t proc, xdrproc_t args_encoder,
    const void* args, std::function<void(absl::StatusOr<RpcReply>)> done) {
  absl::StatusOr<std::string> encoded = XdrEncode(args_encoder, args);
  if (!encoded.ok()) {
    done(encoded.status());
    return;
  }
  auto bytes = std::make_shared<std::string>(*std::move(encoded));
  auto shared_done =
      std::make_shared<std::function<void(absl::StatusOr<RpcReply>)>>(
          std::move(done));
  WithPort(
      peer,
      [this, peer, proc, bytes, shared_done](uint16_t port) {
        rpc_->Call(RpcEndpoint{peer.address, port, peer.transport},
                   CallTarget{kNlmProgram, peer.vers, proc}, Credentials(),
                   XdrProc(XdrRawBytes), bytes.get(),
                   [this, peer, shared_done](absl::StatusOr<RpcReply> r) {
                     if (!r.ok()) ForgetPort(peer);
                     (*shared_done)(std::move(r));
                   });
      },
      [shared_done](absl::Status s) { (*shared_done)(std::move(s)); });
}

}  // namespace lockwarden::gateway::nlm

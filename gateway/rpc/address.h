// Socket addresses and the io_context thread pool shared by the RPC server
// (transport.h) and client (rpc_client.h).
//
// Address normalisation: a dual-stack socket ("::") reports IPv4 peers as
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d). Everything that identifies
// a client (DRC keys, NSM source checks, logs) must see one form, so the
// transport normalises them back to IPv4 before anything else sees them.
//
// Thread safety: the functions are pure. IoThreadPool's methods may be
// called from any thread but its io_context's own threads (Stop joins them).
#ifndef LOCKWARDEN_GATEWAY_RPC_ADDRESS_H_
#define LOCKWARDEN_GATEWAY_RPC_ADDRESS_H_

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE
#endif
#include <asio.hpp>

#include <atomic>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace lockwarden::gateway {

// IPv4-mapped IPv6 -> IPv4; everything else unchanged.
asio::ip::address NormalizeAddress(const asio::ip::address& address);
// Text form of the normalised address ("192.0.2.1", "2001:db8::1").
std::string NormalizedAddressString(const asio::ip::address& address);
// Parses and normalises textual addresses ("::ffff:10.0.0.1" -> 10.0.0.1).
absl::StatusOr<asio::ip::address> ParseAddress(const std::string& text);

// An io_context run by a fixed number of threads.
class IoThreadPool {
 public:
  explicit IoThreadPool(size_t threads);
  ~IoThreadPool();  // Stop()
  IoThreadPool(const IoThreadPool&) = delete;
  IoThreadPool& operator=(const IoThreadPool&) = delete;

  asio::io_context& context() { return io_; }
  // Stops the context and joins the threads. Idempotent.
  void Stop();

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_ADDRESS_H_

#include "gateway/rpc/address.h"

#include "absl/strings/str_cat.h"

namespace lockwarden::gateway {

asio::ip::address NormalizeAddress(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  return address;
}

std::string NormalizedAddressString(const asio::ip::address& address) {
  return NormalizeAddress(address).to_string();
}

absl::StatusOr<asio::ip::address> ParseAddress(const std::string& text) {
  asio::error_code ec;
  asio::ip::address a = asio::ip::make_address(text, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IP address: '", text, "'"));
  }
  return NormalizeAddress(a);
}

IoThreadPool::IoThreadPool(size_t threads) : work_(io_.get_executor()) {
  if (threads == 0) threads = 1;
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { io_.run(); });
  }
}

IoThreadPool::~IoThreadPool() { Stop(); }

void IoThreadPool::Stop() {
  if (stopped_.exchange(true)) return;
  work_.reset();
  io_.stop();
  for (std::thread& t : threads_) t.join();
}

}  // namespace lockwarden::gateway

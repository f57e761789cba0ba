#include "gateway/nsm/client_address_book.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway::nsm {
namespace {

TEST(ClientAddressBookTest, LookupReturnsLastRecordedAddress) {
  ClientAddressBook book;
  EXPECT_EQ(book.Lookup("client1"), std::nullopt);
  book.Record("client1", "198.18.0.7");
  book.Record("client1", "198.18.0.8");
  EXPECT_EQ(book.Lookup("client1"), "198.18.0.8");
  EXPECT_EQ(book.size(), 1u);
}

TEST(ClientAddressBookTest, IgnoresEmptyAndOversizedNames) {
  ClientAddressBook book;
  book.Record("", "198.18.0.7");
  book.Record("client1", "");
  book.Record(std::string(ClientAddressBook::kMaxNameBytes + 1, 'a'),
              "198.18.0.7");
  EXPECT_EQ(book.size(), 0u);
}

TEST(ClientAddressBookTest, EvictsLeastRecentlyUsedAtLimit) {
  ClientAddressBook book(2);
  book.Record("a", "198.18.0.1");
  book.Record("b", "198.18.0.2");
  ASSERT_EQ(book.Lookup("a"), "198.18.0.1");  // a is now most recent
  book.Record("c", "198.18.0.3");             // evicts b
  EXPECT_EQ(book.size(), 2u);
  EXPECT_EQ(book.Lookup("b"), std::nullopt);
  EXPECT_EQ(book.Lookup("a"), "198.18.0.1");
  EXPECT_EQ(book.Lookup("c"), "198.18.0.3");
}

TEST(ClientAddressBookTest, ConcurrentRecordsStayWithinLimit) {
  ClientAddressBook book(100);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&book, t] {
      for (int i = 0; i < 1000; ++i) {
        book.Record(absl::StrCat("host", t, "-", i % 300), "198.18.0.1");
        book.Lookup(absl::StrCat("host", (t + 1) % 4, "-", i % 300));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(book.size(), 100u);
}

}  // namespace
}  // namespace lockwarden::gateway::nsm

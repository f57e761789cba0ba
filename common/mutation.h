// One change to persisted state: the unit the core emits in its deltas and
// the StateStore commits atomically in batches. Keys and values are opaque
// bytes here; server/core/ documents the key layout.
#ifndef LOCKWARDEN_COMMON_MUTATION_H_
#define LOCKWARDEN_COMMON_MUTATION_H_

#include <string>
#include <utility>
#include <vector>

namespace lockwarden {

struct Mutation {
  enum class Op { kPut, kDelete };

  static Mutation Put(std::string key, std::string value) {
    return Mutation{Op::kPut, std::move(key), std::move(value)};
  }
  static Mutation Delete(std::string key) {
    return Mutation{Op::kDelete, std::move(key), std::string()};
  }

  Op op = Op::kPut;
  std::string key;
  std::string value;  // Empty for kDelete.

  friend bool operator==(const Mutation& a, const Mutation& b) {
    return a.op == b.op && a.key == b.key && a.value == b.value;
  }
};

// Mutations applied in order: a later one for the same key wins.
using Delta = std::vector<Mutation>;

}  // namespace lockwarden

#endif  // LOCKWARDEN_COMMON_MUTATION_H_

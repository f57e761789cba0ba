// A throwaway PKI for TLS tests, made with the openssl command at run time
// (nothing is checked in): EC P-256 CAs and leaf certificates signed by
// them, valid for one day, under a fresh directory below $TEST_TMPDIR.
//
// Thread safety: not thread-safe; build it in a test fixture.
#ifndef LOCKWARDEN_TESTS_COMMON_TEST_PKI_H_
#define LOCKWARDEN_TESTS_COMMON_TEST_PKI_H_

#include <string>

namespace lockwarden::testing {

class TestPki {
 public:
  // Empties and creates $TEST_TMPDIR/<subdir>. Every command's failure is
  // a gtest failure and clears ok().
  explicit TestPki(const std::string& subdir);

  // Writes <name>.key and a self-signed <name>.pem.
  void MakeCa(const std::string& name);
  // Writes <name>.key and <name>.pem for subject CN=<cn>, signed by CA
  // <ca>, with one X.509v3 extension line (e.g. "subjectAltName=DNS:x" or
  // "extendedKeyUsage=clientAuth").
  void MakeLeaf(const std::string& name, const std::string& ca,
                const std::string& cn, const std::string& extension);

  std::string Path(const std::string& file) const;
  // The contents of Path(file) ("" if unreadable).
  std::string Pem(const std::string& file) const;
  bool ok() const { return ok_; }

 private:
  void Run(const std::string& command);

  std::string dir_;
  bool ok_ = true;
};

}  // namespace lockwarden::testing

#endif  // LOCKWARDEN_TESTS_COMMON_TEST_PKI_H_

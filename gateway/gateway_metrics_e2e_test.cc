// --metrics-listen end to end: a real lockwarden-server and gateway, real
// NLM traffic (sync and *_MSG calls, a DRC replay, an unknown procedure, a
// blocked lock whose GRANTED_MSG is refused, a server outage answered
// DENIED_NOLOCKS), then /metrics scraped over HTTP and every series the
// gateway documents checked.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/gateway_process.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"
#include "tests/common/server_process.h"

namespace lockwarden::gateway {
namespace {

using nlm::Eventually;
using nlm::Lock4;
using nlm::Spec;
using nlm::Test4;
using nlm::Unlock4;

// GET /metrics over HTTP/1.0; the body, or "" on failure.
std::string Scrape(int port) {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(s);
    return "";
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (write(s, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(s);
    return "";
  }
  std::string out;
  char buf[8192];
  for (int i = 0; i < 10000; ++i) {  // bounded: at most 80 MB
    const ssize_t n = read(s, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(s);
  const size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

// Sum of the samples of `name` whose line contains every label in `labels`;
// nullopt if there is none.
std::optional<double> Sample(const std::string& text, const std::string& name,
                             const std::vector<std::string>& labels = {}) {
  std::optional<double> sum;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, absl::StrCat(name, "{")) &&
        !absl::StartsWith(line, absl::StrCat(name, " "))) {
      continue;
    }
    bool all = true;
    for (const std::string& l : labels) all = all && absl::StrContains(line, l);
    if (!all) continue;
    sum = sum.value_or(0) +
          std::stod(std::string(line.substr(line.rfind(' ') + 1)));
  }
  return sum;
}

// Sends one raw NLM4 call over UDP from a fixed socket (same xid = a
// retransmission) and returns the reply, if any, within 2 s.
class RawUdp {
 public:
  explicit RawUdp(int port) : fd_(socket(AF_INET, SOCK_DGRAM, 0)) {
    to_.sin_family = AF_INET;
    to_.sin_port = htons(static_cast<uint16_t>(port));
    to_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{2, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawUdp() { close(fd_); }
  std::optional<std::string> Call(const std::string& message,
                                  bool expect_reply = true) {
    sendto(fd_, message.data(), message.size(), 0,
           reinterpret_cast<sockaddr*>(&to_), sizeof(to_));
    if (!expect_reply) return std::nullopt;
    char buf[65536];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

 private:
  const int fd_;
  sockaddr_in to_{};
};

std::string LockMessage(uint32_t xid, uint32_t proc, Spec s) {
  nlm4_lockargs args = nlm::LockArgs4(s);
  absl::StatusOr<std::string> m =
      EncodeCall(xid, CallTarget{NLM_PROG, NLM4_VERS, proc},
                 CallCredentials::None(), XdrProc(xdr_nlm4_lockargs), &args);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : "";
}

TEST(GatewayMetricsE2eTest, ScrapeShowsEveryDocumentedSeriesAfterNlmTraffic) {
  auto server = testing::ServerProcess::Start(testing::ServerProcessOptions{});
  ASSERT_TRUE(server.ok()) << server.status();
  const uint16_t portmap = FreePort();
  ASSERT_NE(portmap, 0);
  // Callbacks (GRANTED_MSG, *_RES) find the "client's" NLM through the
  // gateway's own portmapper: the gateway is its own client here.
  GatewayProcess gw({"--name=gw.metrics", "--server=" + (*server)->address(),
                     "--bind=127.0.0.1", "--nlm-port=0", "--nsm-port=0",
                     absl::StrCat("--portmap-port=", portmap),
                     absl::StrCat("--client-rpcbind-port=", portmap),
                     "--metrics-listen=127.0.0.1:0", "--failover-wait-ms=500",
                     "--rpc-timeout-ms=200"});
  std::optional<ReadyPorts> ports = gw.WaitReady(absl::Seconds(30));
  ASSERT_TRUE(ports.has_value());
  ASSERT_GT(ports->metrics, 0);

  CLIENT* tcp = Connect(ports->nlm, NLM_PROG, NLM4_VERS, true);
  CLIENT* udp = Connect(ports->nlm, NLM_PROG, NLM4_VERS, false);
  ASSERT_TRUE(tcp && udp);
  Spec a;
  a.caller = "127.0.0.1";
  ASSERT_EQ(Lock4(tcp, a), NLM4_GRANTED);
  Spec b = a;
  b.svid = 2;
  b.oh = "oh-2";
  EXPECT_EQ(Test4(udp, b), NLM4_DENIED);
  // A blocked lock: granted when `a` unlocks, delivered as GRANTED_MSG to
  // the gateway itself, which refuses it (GRANTED_RES DENIED).
  Spec blocked = b;
  blocked.block = true;
  EXPECT_EQ(Lock4(tcp, blocked), NLM4_BLOCKED);
  EXPECT_EQ(Unlock4(tcp, a), NLM4_GRANTED);

  RawUdp raw(ports->nlm);
  // LOCK twice with one xid: executed once, replayed from the DRC.
  Spec c = a;
  c.fh = "file-2";
  const std::string lock = LockMessage(0x5eed0001, NLMPROC4_LOCK, c);
  ASSERT_TRUE(raw.Call(lock).has_value());
  ASSERT_TRUE(raw.Call(lock).has_value());
  // LOCK_MSG: answered by a LOCK_RES call (to the gateway itself).
  Spec d = a;
  d.fh = "file-3";
  raw.Call(LockMessage(0x5eed0002, NLMPROC4_LOCK_MSG, d), false);
  // An unknown procedure: PROC_UNAVAIL.
  EXPECT_EQ(
      clnt_call(udp, 99, XdrVoid(), nullptr, XdrVoid(), nullptr, nlm::kTimeout),
      RPC_PROCUNAVAIL);

  auto metrics = [&] { return Scrape(ports->metrics); };
  ASSERT_TRUE(Eventually([&] {
    return Sample(metrics(), "lockwarden_gateway_granted_refused_total") ==
               1.0 &&
           Sample(metrics(), "lockwarden_gateway_outgoing_calls_total",
                  {"procedure=\"LOCK_RES\"", "result=\"ok\""})
                   .value_or(0) >= 1.0;
  }));

  // The server goes away: a LOCK waits --failover-wait-ms, then
  // DENIED_NOLOCKS; the event streams break and reconnect attempts start.
  ASSERT_TRUE((*server)->Kill().ok());
  Spec e = a;
  e.fh = "file-4";
  EXPECT_EQ(Lock4(tcp, e), NLM4_DENIED_NOLOCKS);
  clnt_destroy(udp);

  ASSERT_TRUE(Eventually([&] {
    return Sample(metrics(), "lockwarden_gateway_event_stream_reconnects_total",
                  {"stream=\"grants\""})
               .value_or(0) >= 1.0;
  }));
  const std::string text = metrics();
  SCOPED_TRACE(text);
  const std::string p = "lockwarden_gateway_";
  const std::vector<std::string> lock4 = {"program=\"nlm\"", "version=\"4\"",
                                          "procedure=\"NLM_LOCK v4\""};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.end(), lock4.begin(), lock4.end());
    return more;
  };
  // Requests by procedure, transport and outcome; latency histograms.
  EXPECT_GE(Sample(text, p + "rpc_requests_total",
                   with({"transport=\"tcp\"", "outcome=\"success\""})),
            3.0);  // a, blocked, e
  EXPECT_EQ(Sample(text, p + "rpc_requests_total",
                   with({"transport=\"udp\"", "outcome=\"success\""})),
            1.0);  // the raw LOCK, executed once
  EXPECT_EQ(Sample(text, p + "rpc_requests_total",
                   {"procedure=\"NLM_TEST v4\"", "outcome=\"success\""}),
            1.0);
  EXPECT_EQ(Sample(text, p + "rpc_requests_total",
                   {"procedure=\"NLM_LOCK_MSG v4\"", "outcome=\"no_reply\""}),
            1.0);
  EXPECT_GE(Sample(text, p + "rpc_request_duration_seconds_count", lock4), 4.0);
  EXPECT_TRUE(Sample(text, p + "rpc_request_duration_seconds_bucket",
                     with({"le=\"0.001\""}))
                  .has_value());
  // RPC-level errors, DRC.
  EXPECT_EQ(Sample(text, p + "rpc_errors_total",
                   {"service=\"nlm\"", "error=\"proc_unavail\""}),
            1.0);
  EXPECT_EQ(Sample(text, p + "rpc_errors_total",
                   {"service=\"nlm\"", "error=\"garbage_args\""}),
            0.0);
  EXPECT_GE(Sample(text, p + "drc_hits_total"), 1.0);
  EXPECT_GE(Sample(text, p + "drc_misses_total"), 5.0);
  EXPECT_GE(Sample(text, p + "drc_entries"), 1.0);
  for (const char* name : {"drc_absorbed_total", "drc_evictions_total",
                           "drc_expirations_total", "drc_reply_bytes"}) {
    EXPECT_TRUE(Sample(text, p + name).has_value()) << name;
  }
  // Server calls (unary or streams, whichever the client uses), failover
  // waits (the server was killed), DENIED_NOLOCKS.
  EXPECT_GE(Sample(text, p + "server_calls_total", {"code=\"OK\""}), 1.0);
  EXPECT_GE(Sample(text, p + "server_calls_total", {"code=\"UNAVAILABLE\""}),
            1.0);
  EXPECT_TRUE(
      Sample(text, p + "server_call_duration_seconds_count").has_value());
  EXPECT_GE(Sample(text, p + "server_failover_waits_total"), 1.0);
  EXPECT_EQ(Sample(text, p + "nlm_denied_nolocks_total",
                   {"procedure=\"NLM_LOCK v4\"", "form=\"reply\""}),
            1.0);
  EXPECT_EQ(Sample(text, p + "nlm_server_errors_total"), 1.0);
  // Callbacks: LOCK_RES for the LOCK_MSG, GRANTED_MSG refused.
  // LOCK_RES, and the GRANTED_RES (DENIED) the gateway sent itself.
  EXPECT_EQ(Sample(text, p + "nlm_res_sent_total"), 2.0);
  EXPECT_EQ(Sample(text, p + "outgoing_calls_total",
                   {"procedure=\"GRANTED_RES\"", "result=\"ok\""}),
            1.0);
  EXPECT_EQ(Sample(text, p + "outgoing_calls_total",
                   {"procedure=\"GRANTED_MSG\"", "result=\"ok\""}),
            1.0);
  EXPECT_GE(Sample(text, p + "outgoing_calls_total",
                   {"procedure=\"GETPORT\"", "result=\"ok\""}),
            2.0);
  // Root here: every callback left from a port below 1024.
  EXPECT_EQ(Sample(text, p + "privileged_port_fallbacks_total"), 0.0);
  EXPECT_EQ(Sample(text, p + "granted_events_total"), 1.0);
  EXPECT_EQ(Sample(text, p + "granted_attempts_total"), 1.0);
  EXPECT_EQ(Sample(text, p + "granted_delivered_total"), 0.0);
  for (const char* name :
       {"granted_retries_total", "granted_undeliverable_total",
        "granted_acks_failed_total", "granted_deliveries_in_flight",
        "sm_notify_delivered_total", "sm_notify_failed_attempts_total",
        "sm_notify_gave_up_total", "statd_callbacks_delivered_total",
        "statd_callback_failed_attempts_total", "statd_callbacks_gave_up_total",
        "nlm_requests_in_flight", "nlm_res_failed_total"}) {
    EXPECT_TRUE(Sample(text, p + name).has_value()) << name;
  }
  EXPECT_TRUE(Sample(text, p + "event_stream_reconnects_total",
                     {"stream=\"notifications\""})
                  .has_value());
  EXPECT_EQ(
      Sample(text, p + "event_stream_connected", {"stream=\"notifications\""}),
      0.0);
  // Connections: the libtirpc TCP client is still connected.
  EXPECT_GE(Sample(text, p + "connections_open", {"service=\"nlm\""}), 1.0);
  EXPECT_GE(
      Sample(text, p + "tcp_connections_accepted_total", {"service=\"nlm\""}),
      1.0);
  // A well-behaved client: nothing closed for cause, no reply queued.
  for (const char* reason : {"framing_error", "idle", "slow_reader"}) {
    EXPECT_EQ(Sample(text, p + "tcp_connections_closed_total",
                     {"service=\"nlm\"",
                      absl::StrCat("reason=\"", reason, "\"")}),
              0.0)
        << reason;
  }
  EXPECT_EQ(Sample(text, p + "tcp_replies_queued_total", {"service=\"nlm\""}),
            0.0);
  for (const char* name : {"tcp_connections_rejected_total",
                           "udp_datagrams_dropped_total", "calls_in_flight"}) {
    EXPECT_TRUE(Sample(text, p + name, {"service=\"nsm\""}).has_value())
        << name;
  }
  clnt_destroy(tcp);
  EXPECT_EQ(gw.Terminate(absl::Seconds(10)), 0);
}

}  // namespace
}  // namespace lockwarden::gateway

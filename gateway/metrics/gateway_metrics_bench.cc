// Cost of metrics on the dispatch path: one NLM4 TEST call dispatched and
// answered synchronously, without and with GatewayMetrics as the
// dispatcher's CallObserver (no DRC, to isolate the observer).
//
//   bazel run -c opt //gateway/metrics:gateway_metrics_bench
#include <memory>
#include <optional>
#include <string>

#include "benchmark/benchmark.h"
#include "gateway/metrics/gateway_metrics.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway::metrics {
namespace {

std::string TestCall() {
  nlm4_testargs args{};
  static char caller[] = "client.example";
  static char fh[] = "fh";
  static char oh[] = "oh";
  args.alock.caller_name = caller;
  args.alock.fh = {2, fh};
  args.alock.oh = {2, oh};
  args.alock.l_len = 10;
  return *EncodeCall(1, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_TEST},
                     CallCredentials::None(), XdrProc(xdr_nlm4_testargs),
                     &args);
}

void Run(benchmark::State& state, CallObserver* observer) {
  Dispatcher d(DispatcherOptions{nullptr, nullptr, observer});
  (void)d.RegisterProcedure(
      NLM_PROG, NLM4_VERS, NLMPROC4_TEST,
      MakeProcedure("NLM_TEST v4", xdr_nlm4_testargs, xdr_nlm4_testres,
                    [](std::unique_ptr<RpcCall> call) {
                      nlm4_testres res{};
                      res.stat.stat = NLM4_GRANTED;
                      (void)call->Reply(&res);
                    }));
  const std::string message = TestCall();
  CallContext ctx;
  ctx.peer_address = "192.0.2.1";
  for (auto _ : state) {
    d.Dispatch(ctx, message, [](std::optional<std::string> reply) {
      benchmark::DoNotOptimize(reply);
    });
  }
}

void BM_DispatchWithoutMetrics(benchmark::State& state) {
  Run(state, nullptr);
}
BENCHMARK(BM_DispatchWithoutMetrics);

void BM_DispatchWithMetrics(benchmark::State& state) {
  auto metrics = GatewayMetrics::Start("");
  Run(state, metrics->get());
}
BENCHMARK(BM_DispatchWithMetrics);

}  // namespace
}  // namespace lockwarden::gateway::metrics

BENCHMARK_MAIN();

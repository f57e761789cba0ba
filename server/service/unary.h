// Helpers shared by the unary RPC handlers: validate a request into a core
// command, submit it through the CoreRunner, fill the response from the
// durable reply. Keeps each handler to the lines that differ.
#ifndef LOCKWARDEN_SERVER_SERVICE_UNARY_H_
#define LOCKWARDEN_SERVER_SERVICE_UNARY_H_

#include <utility>

#include <grpcpp/grpcpp.h>

#include "server/service/convert.h"
#include "server/service/core_runner.h"

namespace lockwarden::service {

// Converts `*request` with ToCommand, submits it, and on success calls
// `fill(reply, response)` before finishing the RPC.
template <typename Request, typename Response, typename FillFn>
grpc::ServerUnaryReactor* SubmitUnary(CoreRunner* runner,
                                      grpc::CallbackServerContext* ctx,
                                      const Request* request,
                                      Response* response, FillFn fill) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto cmd = ToCommand(*request);
  if (!cmd.ok()) {
    reactor->Finish(ToGrpcStatus(cmd.status()));
    return reactor;
  }
  runner->Submit(*std::move(cmd),
                 [reactor, response, fill](absl::StatusOr<core::Reply> r) {
                   if (!r.ok()) {
                     reactor->Finish(ToGrpcStatus(r.status()));
                     return;
                   }
                   fill(*r, response);
                   reactor->Finish(grpc::Status::OK);
                 });
  return reactor;
}

// Runs `read(core, now, response)` and finishes once what it observed is
// durable.
template <typename Response, typename ReadFn>
grpc::ServerUnaryReactor* ReadUnary(CoreRunner* runner,
                                    grpc::CallbackServerContext* ctx,
                                    Response* response, ReadFn read) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  runner->ReadDurable(
      [&](const core::LockCore& core, int64_t now_ms) {
        read(core, now_ms, response);
      },
      [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
  return reactor;
}

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_UNARY_H_

/*
 * nlm_ops: one NLM4 call per operation, against a server reached through a
 * libnfs raw RPC context (TCP or UDP), printing one result line each:
 *
 *   <op> <NLM4_STATUS> [detail]   e.g. "test NLM4_DENIED holder=svid:2,..."
 *   <op> RPC_ERROR <message>           the call got no valid reply
 *
 *   <op> SENT                          a one-way _MSG call went out
 *
 * NULL/TEST/LOCK/CANCEL/UNLOCK use libnfs's NLM4 client calls; SHARE,
 * UNSHARE, NM_LOCK, FREE_ALL and the _MSG calls (absent from libnfs 4.0)
 * are encoded with libnfs's zdr routines and sent through raw_rpc
 * (libtirpc).
 *
 * Thread-safety: single-threaded use only.
 */
#ifndef LOCKWARDEN_TESTS_PEERS_NLM_OPS_H_
#define LOCKWARDEN_TESTS_PEERS_NLM_OPS_H_

#include <stdbool.h>
#include <stdint.h>

#include "tests/peers/nlm_util.h"

enum nlm_op_kind {
  OP_NULL,
  OP_TEST,
  OP_LOCK,
  OP_LOCK_BLOCK,
  OP_UNLOCK,
  OP_CANCEL,
  OP_SHARE,
  OP_UNSHARE,
  OP_NM_LOCK,
  OP_FREE_ALL,
  OP_SLEEP,
  /* One-way _MSG calls: the answer arrives as a _RES call at the caller's
   * NLM service (nlm_client --serve-callbacks). */
  OP_TEST_MSG,
  OP_LOCK_MSG,
  OP_LOCK_BLOCK_MSG,
  OP_CANCEL_MSG,
  OP_UNLOCK_MSG,
};

/* Everything one call needs; command-line defaults, overridable per op. */
struct nlm_params {
  char caller[NLM_CALLER_NAME_MAX + 1];
  unsigned char fh[NLM4_FH_MAX];
  int fh_len;
  unsigned char oh[NLM_OPAQUE_MAX];
  int oh_len; /* -1: "<svid>@<caller>", as Linux lockd builds it */
  unsigned char cookie[NLM_OPAQUE_MAX];
  int cookie_len; /* -1: 4-byte big-endian call counter */
  uint32_t svid;
  uint64_t offset;
  uint64_t length;
  bool exclusive;
  bool reclaim;
  int32_t state;
  uint32_t share_mode;   /* fsh_mode: 0 deny none .. 3 deny read+write */
  uint32_t share_access; /* fsh_access: 0 none, 1 read, 2 write, 3 both */
  int sleep_ms;
  /* Non-zero: send with this RPC xid (through libtirpc); sending the same
   * call twice with one xid is a retransmission, as a duplicate request
   * cache sees it. */
  uint32_t xid;
};

struct nlm_target {
  struct rpc_context *rpc; /* connected (TCP) or addressed (UDP) */
  const char *server;
  int port;
  bool udp;
  int timeout_ms;
  bool quiet; /* no per-call lines (--summary) */
};

/* nlm_op_run's *result besides an nlm4_stats value. */
#define NLM_RESULT_RPC_ERROR (-1)
#define NLM_RESULT_NO_STATUS (-2) /* void reply, one-way message, sleep */

/* Parses "lock", "test", "lock-block", ...; -1 if unknown. */
int nlm_op_parse(const char *name);

/* Applies "key=value,key=value" overrides to p. Returns 0 or -1 (message
 * on stderr). Keys: caller svid oh fh offset len excl reclaim state
 * cookie mode access ms xid. */
int nlm_params_override(struct nlm_params *p, const char *spec);

/* Performs one operation and prints its line (unless t->quiet); stores the
 * NLM status or an NLM_RESULT_* in *result. Returns 0 if the server
 * replied (whatever the NLM status), -1 on an RPC failure. */
int nlm_op_run(struct nlm_target *t, int op, const char *label,
               const struct nlm_params *p, uint32_t call_number,
               int *result);

/* Opens a libnfs context to server:port (port 0: ask server's rpcbind).
 * Returns NULL with a message on stderr on failure. */
struct rpc_context *nlm_connect(const char *server, int *port, bool udp,
                                int timeout_ms);

#endif /* LOCKWARDEN_TESTS_PEERS_NLM_OPS_H_ */

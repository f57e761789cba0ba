/*
 * nlm_callbacks: the client side's NLM4 service, receiving the callbacks a
 * lock server sends for blocked locks that became available:
 *
 *   GRANTED (proc 5)      answered with nlm4_res{cookie, reply_status}
 *   GRANTED_MSG (proc 10) no reply; optionally answered by a separate
 *                         GRANTED_RES (proc 15) call to the sender's NLM,
 *                         found through the sender's rpcbind
 *   TEST_RES .. UNLOCK_RES, GRANTED_RES (procs 11-15)
 *                         answers to our own _MSG calls; printed as
 *                         "LOCK_RES NLM4_GRANTED cookie=.. from=.. proto=.."
 *                         (GRANTED_RES as GRANTED_RES_RECEIVED)
 *   proc 16               rpc.statd's private callback after an SM_NOTIFY
 *                         for a host monitored with my_proc 16: printed as
 *                         "SM_NOTIFY_CB mon_name=.. state=N priv=HEX .."
 *   NULL (proc 0)
 *
 * It listens on one port over UDP and TCP (libnfs server contexts),
 * registers NLM v4 with the local rpcbind, and prints one line per
 * callback:
 *
 *   GRANTED caller=c svid=1 oh=.. fh=.. offset=0 len=10 excl=1 cookie=..
 *       from=198.18.0.2 proto=udp
 *
 * Thread-safety: single-threaded; one instance per process.
 */
#ifndef LOCKWARDEN_TESTS_PEERS_NLM_CALLBACKS_H_
#define LOCKWARDEN_TESTS_PEERS_NLM_CALLBACKS_H_

#include <stdbool.h>

struct serve_options {
  int port;              /* UDP and TCP port to listen on */
  bool register_pmap;    /* PMAP SET NLM v4 on the local rpcbind */
  int max_callbacks;     /* exit after this many calls other than NULL
                            (GRANTED, GRANTED_MSG, *_RES); 0: never */
  int max_seconds;       /* exit after this long (always bounded) */
  int reply_status;      /* nlm4_stats returned to GRANTED / GRANTED_RES */
  bool send_granted_res; /* answer GRANTED_MSG with GRANTED_RES */
};

/* Serves until a limit is reached or SIGTERM/SIGINT. Returns 0, or 1 if
 * the service could not be set up. */
int serve_callbacks(const struct serve_options *o);

#endif /* LOCKWARDEN_TESTS_PEERS_NLM_CALLBACKS_H_ */

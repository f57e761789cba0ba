/*
 * raw_rpc: ONC RPC calls whose arguments and results are already XDR bytes,
 * carried by libtirpc's clients, plus rpcbind helpers.
 *
 * Why it exists: libnfs 4.0 (Debian 12) has client calls only for NLM4
 * NULL/TEST/LOCK/CANCEL/UNLOCK. The peers encode the other procedures'
 * arguments with libnfs's generated zdr routines and send them through
 * here. libnfs's <nfsc/libnfs-zdr.h> and libtirpc's <rpc/rpc.h> cannot be
 * included in one translation unit (both define XDR-era types), so this
 * interface uses only plain C types.
 *
 * raw_rpc_call keeps one client (socket) for its last target, so that
 * consecutive calls and retransmissions share a source port.
 *
 * Thread-safety: single-threaded use only (the cached client).
 */
#ifndef LOCKWARDEN_TESTS_PEERS_RAW_RPC_H_
#define LOCKWARDEN_TESTS_PEERS_RAW_RPC_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Calls prog/vers/proc at addr:port over UDP or TCP with `args`
 * (XDR-encoded, length a multiple of 4), with RPC transaction id `xid`
 * (0: libtirpc's choice). If `res` is NULL the call is a
 * one-way message (NLM _MSG/_RES): it is sent and no reply awaited.
 * Otherwise the XDR-encoded results (at most res_cap bytes) are copied to
 * `res` and their length stored in *res_len.
 * Returns 0, or -1 with a message in err. */
int raw_rpc_call(const char *addr, int port, bool udp, uint32_t prog,
                 uint32_t vers, uint32_t proc, uint32_t xid, const void *args,
                 size_t args_len, void *res, size_t res_cap, size_t *res_len,
                 int timeout_ms, char *err, size_t err_len);

/* The xid the last call went out with. libtirpc 1.3 over TCP does not
 * send the xid CLSET_XID asked for (it decrements the network-order
 * value); the same requested xid still yields the same wire xid. */
uint32_t raw_rpc_last_xid(void);

/* Closes the cached client, if any (at exit; optional). */
void raw_rpc_close(void);

/* Port of prog/vers on `addr` from its rpcbind, or -1 (err filled). */
int raw_rpcb_getport(const char *addr, uint32_t prog, uint32_t vers,
                     bool udp, char *err, size_t err_len);

/* Registers (or removes) prog/vers with the local rpcbind (PMAP v2 SET,
 * through libtirpc's local transport). Returns 0 or -1. */
int raw_pmap_set(uint32_t prog, uint32_t vers, bool udp, int port);
int raw_pmap_unset(uint32_t prog, uint32_t vers);

#endif /* LOCKWARDEN_TESTS_PEERS_RAW_RPC_H_ */

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
 * Thread-safety: functions are reentrant; no shared state.
 */
#ifndef LOCKWARDEN_TESTS_PEERS_RAW_RPC_H_
#define LOCKWARDEN_TESTS_PEERS_RAW_RPC_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Calls prog/vers/proc at addr:port over UDP or TCP with `args`
 * (XDR-encoded, length a multiple of 4). If `res` is NULL the call is a
 * one-way message (NLM _MSG/_RES): it is sent and no reply awaited.
 * Otherwise the XDR-encoded results (at most res_cap bytes) are copied to
 * `res` and their length stored in *res_len.
 * Returns 0, or -1 with a message in err. */
int raw_rpc_call(const char *addr, int port, bool udp, uint32_t prog,
                 uint32_t vers, uint32_t proc, const void *args,
                 size_t args_len, void *res, size_t res_cap, size_t *res_len,
                 int timeout_ms, char *err, size_t err_len);

/* Port of prog/vers on `addr` from its rpcbind, or -1 (err filled). */
int raw_rpcb_getport(const char *addr, uint32_t prog, uint32_t vers,
                     bool udp, char *err, size_t err_len);

/* Registers (or removes) prog/vers with the local rpcbind (PMAP v2 SET,
 * through libtirpc's local transport). Returns 0 or -1. */
int raw_pmap_set(uint32_t prog, uint32_t vers, bool udp, int port);
int raw_pmap_unset(uint32_t prog, uint32_t vers);

#endif /* LOCKWARDEN_TESTS_PEERS_RAW_RPC_H_ */

/*
 * Small helpers shared by the test peers (nlm_client, its callback server,
 * nsm_client): hex strings, status names, connecting and a poll loop for
 * libnfs contexts.
 *
 * Thread-safety: single-threaded use (nlm4_stat_name returns a static
 * buffer for unknown codes); the peers are single-threaded programs.
 */
#ifndef LOCKWARDEN_TESTS_PEERS_NLM_UTIL_H_
#define LOCKWARDEN_TESTS_PEERS_NLM_UTIL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_context;

/* NLM4 limits from RFC 1813 / XNFS: LM_MAXSTRLEN and the v4 handle size. */
#define NLM_CALLER_NAME_MAX 1024
#define NLM4_FH_MAX 64
/* Owner handles and cookies are opaque<>; our peers never send more. */
#define NLM_OPAQUE_MAX 1024

/* Parses an even-length hex string into out (at most cap bytes). Returns
 * the byte count, or -1 if it is not hex or too long. */
int hex_decode(const char *hex, unsigned char *out, size_t cap);

/* Writes `len` bytes as lowercase hex into out (NUL-terminated; truncated
 * with "..." if out is too small). Returns out. */
char *hex_encode(const void *data, size_t len, char *out, size_t out_cap);

/* "NLM4_GRANTED", ..., or "NLM4_STAT_<n>" for unknown codes. */
const char *nlm4_stat_name(int stat);

/* Parses "NLM4_DENIED" (or a number) into a status; -1 if unknown. */
int nlm4_stat_parse(const char *name);

/* Milliseconds / microseconds on a monotonic clock. */
int64_t now_ms(void);
int64_t now_us(void);

/* Services `rpc` until *done is set. Returns 0; -1 if the context failed
 * (err filled from libnfs); -2 on timeout. */
int rpc_wait(struct rpc_context *rpc, const bool *done, int timeout_ms,
             char *err, size_t err_len);

/* A libnfs context for prog/vers at server:port: a TCP connection, or a
 * UDP socket addressed to it. Port 0: ask the server's rpcbind. Returns
 * NULL with a message prefixed by `who` on stderr. */
struct rpc_context *peer_connect(const char *who, const char *server,
                                 int *port, bool udp, uint32_t prog,
                                 uint32_t vers, int timeout_ms);

#endif /* LOCKWARDEN_TESTS_PEERS_NLM_UTIL_H_ */

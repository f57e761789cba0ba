/*
 * nlm_util: see nlm_util.h.
 */
#include "tests/peers/nlm_util.h"

#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>

#include "tests/peers/raw_rpc.h"

/* libnfs 4.0 exports these UDP calls but declares them only in its private
 * header; the signatures are stable from 1.x to 5.x. */
struct rpc_context *rpc_init_udp_context(void);
int rpc_bind_udp(struct rpc_context *rpc, char *addr, int port);
int rpc_set_udp_destination(struct rpc_context *rpc, char *addr, int port,
                            int is_broadcast);

/* One poll() never sleeps longer than this, so libnfs can expire calls
 * (rpc_service with no events) and our deadline is checked. */
#define POLL_SLICE_MS 100

static int hex_nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = (char)tolower((unsigned char)c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int hex_decode(const char *hex, unsigned char *out, size_t cap) {
  size_t n = strlen(hex);
  if (n % 2 != 0 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hex_nibble(hex[2 * i]);
    int lo = hex_nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  return (int)(n / 2);
}

char *hex_encode(const void *data, size_t len, char *out, size_t out_cap) {
  static const char digits[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)data;
  size_t pos = 0;
  if (out_cap == 0) return out;
  for (size_t i = 0; i < len; i++) {
    if (pos + 2 + 4 > out_cap) {  /* room for "..." and NUL */
      memcpy(out + pos, "...", 3);
      pos += 3;
      break;
    }
    out[pos++] = digits[p[i] >> 4];
    out[pos++] = digits[p[i] & 15];
  }
  out[pos] = '\0';
  return out;
}

static const char *const kStatNames[] = {
    "NLM4_GRANTED",      "NLM4_DENIED",  "NLM4_DENIED_NOLOCKS",
    "NLM4_BLOCKED",      "NLM4_DENIED_GRACE_PERIOD", "NLM4_DEADLCK",
    "NLM4_ROFS",         "NLM4_STALE_FH", "NLM4_FBIG",
    "NLM4_FAILED",
};
#define STAT_NAMES_COUNT ((int)(sizeof(kStatNames) / sizeof(kStatNames[0])))

const char *nlm4_stat_name(int stat) {
  static char other[32];
  if (stat >= 0 && stat < STAT_NAMES_COUNT) return kStatNames[stat];
  snprintf(other, sizeof(other), "NLM4_STAT_%d", stat);
  return other;
}

int nlm4_stat_parse(const char *name) {
  for (int i = 0; i < STAT_NAMES_COUNT; i++) {
    if (strcmp(name, kStatNames[i]) == 0) return i;
  }
  char *end = NULL;
  long v = strtol(name, &end, 10);
  if (end != name && *end == '\0' && v >= 0 && v < 1000) return (int)v;
  return -1;
}

int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rpc_wait(struct rpc_context *rpc, const bool *done, int timeout_ms,
             char *err, size_t err_len) {
  int64_t deadline = now_ms() + timeout_ms;
  while (!*done) {
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      snprintf(err, err_len, "timed out after %d ms", timeout_ms);
      return -2;
    }
    struct pollfd pfd = {rpc_get_fd(rpc), (short)rpc_which_events(rpc), 0};
    int n = poll(&pfd, 1, left < POLL_SLICE_MS ? (int)left : POLL_SLICE_MS);
    if (n < 0) continue;  /* EINTR: re-check deadline and done */
    if (rpc_service(rpc, n > 0 ? pfd.revents : 0) < 0) {
      snprintf(err, err_len, "%s", rpc_get_error(rpc));
      return -1;
    }
  }
  return 0;
}

struct connect_state {
  bool done;
  bool ok;
  char err[256];
};

static void on_connect(struct rpc_context *rpc, int status, void *data,
                       void *priv) {
  struct connect_state *c = (struct connect_state *)priv;
  (void)rpc;
  c->done = true;
  c->ok = status == RPC_STATUS_SUCCESS;
  if (!c->ok) snprintf(c->err, sizeof(c->err), "%s", (const char *)data);
}

struct rpc_context *peer_connect(const char *who, const char *server,
                                 int *port, bool udp, uint32_t prog,
                                 uint32_t vers, int timeout_ms) {
  char err[256];
  if (*port == 0) {
    *port = raw_rpcb_getport(server, prog, vers, udp, err, sizeof(err));
    if (*port < 0) {
      fprintf(stderr, "%s: port of %u/%u on %s: %s\n", who, prog, vers,
              server, err);
      return NULL;
    }
  }
  struct rpc_context *rpc = udp ? rpc_init_udp_context() : rpc_init_context();
  if (rpc == NULL) {
    fprintf(stderr, "%s: cannot create an RPC context\n", who);
    return NULL;
  }
  if (udp) {
    if (rpc_bind_udp(rpc, (char *)"0.0.0.0", 0) != 0 ||
        rpc_set_udp_destination(rpc, (char *)server, *port, 0) != 0) {
      fprintf(stderr, "%s: UDP to %s:%d: %s\n", who, server, *port,
              rpc_get_error(rpc));
      rpc_destroy_context(rpc);
      return NULL;
    }
    return rpc;
  }
  struct connect_state c = {false, false, ""};
  if (rpc_connect_port_async(rpc, server, *port, (int)prog, (int)vers,
                             on_connect, &c) != 0 ||
      rpc_wait(rpc, &c.done, timeout_ms, c.err, sizeof(c.err)) != 0 ||
      !c.ok) {
    fprintf(stderr, "%s: connect %s:%d: %s\n", who, server, *port,
            c.err[0] ? c.err : rpc_get_error(rpc));
    rpc_destroy_context(rpc);
    return NULL;
  }
  return rpc;
}

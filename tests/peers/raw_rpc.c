/*
 * raw_rpc: see raw_rpc.h. Built against libtirpc only (never libnfs).
 */
#include "tests/peers/raw_rpc.h"

#include <netdb.h>
#include <netinet/in.h>
#include <rpc/rpc.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* xdrproc_t is variadic in libtirpc; the cast through a generic function
 * pointer says the mismatch is intended (the classic XDR calling idiom). */
#define AS_XDRPROC(f) ((xdrproc_t)(void (*)(void))(f))

/* How long a one-way message waits before its (expected) RPC_TIMEDOUT. */
#define ONE_WAY_WAIT_MS 20

struct raw_in {
  const void *data;
  size_t len;
};

struct raw_out {
  char *buf;
  size_t cap;
  size_t len;
  bool overflow;
};

/* Writes the pre-encoded arguments verbatim. */
static bool_t xdr_raw_in(XDR *xdrs, void *p) {
  struct raw_in *in = (struct raw_in *)p;
  if (in->len == 0) return TRUE;
  return XDR_PUTBYTES(xdrs, (char *)in->data, (u_int)in->len);
}

/* Copies every remaining result word; the record (TCP) or datagram (UDP)
 * ends where XDR_GETBYTES first fails. */
static bool_t xdr_raw_out(XDR *xdrs, void *p) {
  struct raw_out *out = (struct raw_out *)p;
  char word[4];
  while (XDR_GETBYTES(xdrs, word, sizeof(word))) {
    if (out->len + sizeof(word) > out->cap) {
      out->overflow = true;
      return FALSE;
    }
    memcpy(out->buf + out->len, word, sizeof(word));
    out->len += sizeof(word);
  }
  return TRUE;
}

/* A client for addr:port, from a privileged source port (as lockd uses);
 * NULL with err filled on failure. */
static CLIENT *make_client(const char *addr, int port, bool udp,
                           uint32_t prog, uint32_t vers, char *err,
                           size_t err_len) {
  struct addrinfo hints, *ai = NULL;
  char service[8];
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
  snprintf(service, sizeof(service), "%d", port);
  int rc = getaddrinfo(addr, service, &hints, &ai);
  if (rc != 0) {
    snprintf(err, err_len, "resolve %s: %s", addr, gai_strerror(rc));
    return NULL;
  }
  const char *netid = ai->ai_family == AF_INET6 ? (udp ? "udp6" : "tcp6")
                                                : (udp ? "udp" : "tcp");
  struct netconfig *nconf = getnetconfigent(netid);
  if (nconf == NULL) {
    snprintf(err, err_len, "no netconfig for %s", netid);
    freeaddrinfo(ai);
    return NULL;
  }
  struct netbuf nb;
  nb.buf = ai->ai_addr;
  nb.len = nb.maxlen = ai->ai_addrlen;
  CLIENT *clnt = clnt_tli_create(RPC_ANYFD, nconf, &nb, prog, vers, 0, 0);
  freenetconfigent(nconf);
  freeaddrinfo(ai);
  if (clnt == NULL) {
    snprintf(err, err_len, "connect %s:%d: %s", addr, port,
             clnt_spcreateerror("clnt_tli_create"));
  }
  return clnt;
}

/* The one cached client: every call to the same target and transport goes
 * out through the same socket (source port), as a real client's calls and
 * retransmissions do; a duplicate request cache keys on that address. */
static struct {
  CLIENT *clnt;
  char addr[256];
  int port;
  bool udp;
  uint32_t prog, vers;
} g_cached;

void raw_rpc_close(void) {
  if (g_cached.clnt != NULL) {
    auth_destroy(g_cached.clnt->cl_auth);
    clnt_destroy(g_cached.clnt);
    g_cached.clnt = NULL;
  }
}

static CLIENT *cached_client(const char *addr, int port, bool udp,
                             uint32_t prog, uint32_t vers, char *err,
                             size_t err_len) {
  if (g_cached.clnt != NULL && g_cached.port == port && g_cached.udp == udp &&
      g_cached.prog == prog && g_cached.vers == vers &&
      strcmp(g_cached.addr, addr) == 0) {
    return g_cached.clnt;
  }
  raw_rpc_close();
  if (strlen(addr) >= sizeof(g_cached.addr)) {
    snprintf(err, err_len, "address too long");
    return NULL;
  }
  CLIENT *clnt = make_client(addr, port, udp, prog, vers, err, err_len);
  if (clnt == NULL) return NULL;
  auth_destroy(clnt->cl_auth);
  clnt->cl_auth = authunix_create_default();
  g_cached.clnt = clnt;
  strcpy(g_cached.addr, addr);
  g_cached.port = port;
  g_cached.udp = udp;
  g_cached.prog = prog;
  g_cached.vers = vers;
  return clnt;
}

uint32_t raw_rpc_last_xid(void) {
  uint32_t xid = 0;
  if (g_cached.clnt != NULL) clnt_control(g_cached.clnt, CLGET_XID,
                                          (char *)&xid);
  return xid;
}

int raw_rpc_call(const char *addr, int port, bool udp, uint32_t prog,
                 uint32_t vers, uint32_t proc, uint32_t xid, const void *args,
                 size_t args_len, void *res, size_t res_cap, size_t *res_len,
                 int timeout_ms, char *err, size_t err_len) {
  if (args_len % 4 != 0) {
    snprintf(err, err_len, "XDR arguments of %zu bytes", args_len);
    return -1;
  }
  CLIENT *clnt = cached_client(addr, port, udp, prog, vers, err, err_len);
  if (clnt == NULL) return -1;
  if (xid != 0) {
    /* libtirpc uses exactly this xid for the next call. */
    clnt_control(clnt, CLSET_XID, (char *)&xid);
  }

  struct raw_in in = {args, args_len};
  struct raw_out out = {(char *)res, res_cap, 0, false};
  struct timeval tv;
  if (res == NULL) {
    /* One-way message: send, and let the wait for a reply that never comes
     * end in RPC_TIMEDOUT. The classic zero timeout does not work here:
     * libtirpc's clnt_dg_call then returns before sending anything. */
    tv.tv_sec = 0;
    tv.tv_usec = ONE_WAY_WAIT_MS * 1000;
  } else {
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    if (udp) {
      /* Retransmit a lost UDP call a few times within the timeout. */
      struct timeval retry = {0, 500 * 1000};
      clnt_control(clnt, CLSET_RETRY_TIMEOUT, (char *)&retry);
    }
  }
  enum clnt_stat st = clnt_call(
      clnt, proc, AS_XDRPROC(xdr_raw_in), (char *)&in,
      res ? AS_XDRPROC(xdr_raw_out) : AS_XDRPROC(xdr_void),
      res ? (char *)&out : NULL, tv);
  if (res == NULL && st == RPC_TIMEDOUT) return 0;
  if (st != RPC_SUCCESS) {
    snprintf(err, err_len, "%s%s", clnt_sperrno(st),
             out.overflow ? " (reply larger than buffer)" : "");
    /* A broken stream cannot be reused; the next call reconnects. */
    if (!udp) raw_rpc_close();
    return -1;
  }
  if (res_len != NULL) *res_len = out.len;
  return 0;
}

int raw_rpcb_getport(const char *addr, uint32_t prog, uint32_t vers,
                     bool udp, char *err, size_t err_len) {
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof(hints));
  int rc = getaddrinfo(addr, NULL, &hints, &ai);
  if (rc != 0) {
    snprintf(err, err_len, "resolve %s: %s", addr, gai_strerror(rc));
    return -1;
  }
  bool v6 = ai->ai_family == AF_INET6;
  freeaddrinfo(ai);
  struct netconfig *nconf =
      getnetconfigent(v6 ? (udp ? "udp6" : "tcp6") : (udp ? "udp" : "tcp"));
  if (nconf == NULL) {
    snprintf(err, err_len, "no netconfig");
    return -1;
  }
  struct sockaddr_storage ss;
  struct netbuf nb = {sizeof(ss), sizeof(ss), &ss};
  bool_t ok = rpcb_getaddr(prog, vers, nconf, &nb, addr);
  freenetconfigent(nconf);
  if (!ok) {
    snprintf(err, err_len, "rpcbind on %s has no %u/%u/%s", addr, prog, vers,
             udp ? "udp" : "tcp");
    return -1;
  }
  if (ss.ss_family == AF_INET6) {
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int raw_pmap_set(uint32_t prog, uint32_t vers, bool udp, int port) {
  return pmap_set(prog, vers, udp ? IPPROTO_UDP : IPPROTO_TCP,
                  (unsigned short)port)
             ? 0
             : -1;
}

int raw_pmap_unset(uint32_t prog, uint32_t vers) {
  return pmap_unset(prog, vers) ? 0 : -1;
}

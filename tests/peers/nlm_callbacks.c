/*
 * nlm_callbacks: see nlm_callbacks.h.
 */
#include "tests/peers/nlm_callbacks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nlm.h>

#include "tests/peers/nlm_util.h"
#include "tests/peers/raw_rpc.h"

/* Exported by libnfs 4.0, declared only in its private header: the source
 * address of the datagram a UDP server context is processing. */
struct sockaddr *rpc_get_recv_sockaddr(struct rpc_context *rpc);

/* At most this many TCP connections at once (a lock server opens one or
 * two); more are refused by closing them. */
#define TCP_CONNECTIONS_MAX 16
#define NLM4_PROC_GRANTED 5
#define NLM4_PROC_GRANTED_MSG 10
#define NLM4_PROC_GRANTED_RES 15
#define NLM4_PROC_SM_NOTIFY 16
#define GRANTED_RES_TIMEOUT_MS 2000
#define POLL_SLICE_MS 100

static volatile sig_atomic_t g_stop;
static int g_callbacks;
static const struct serve_options *g_opts;
static struct rpc_context *g_udp; /* the one UDP server context */

/* libnfs 4.0's server hands the decoder an uninitialised buffer
 * (zdr_malloc, not zeroed), and its zdr_bytes/zdr_string then copy into
 * whatever pointer the garbage holds: the second call on a socket crashes.
 * The buffer is also misaligned (12 bytes into a header), which UBSan
 * rightly rejects for structs holding 64-bit fields. So these decoders
 * decode into a zeroed, aligned local and copy the bytes out, and the
 * handlers copy them back into an aligned local (ARGS below). */
#define ALIGNED_DECODER(type, fn)                          \
  static uint32_t decode_##type(ZDR *z, void *p, ...) {    \
    type v;                                                \
    memset(&v, 0, sizeof(v));                              \
    uint32_t ok = fn(z, &v);                               \
    memcpy(p, &v, sizeof(v));                              \
    return ok;                                             \
  }
ALIGNED_DECODER(NLM4_GRANTEDargs, zdr_NLM4_GRANTEDargs)
ALIGNED_DECODER(NLM4_TESTres, zdr_NLM4_TESTres)
ALIGNED_DECODER(NLM4_LOCKres, zdr_NLM4_LOCKres)
ALIGNED_DECODER(NLM4_CANCres, zdr_NLM4_CANCres)
ALIGNED_DECODER(NLM4_UNLOCKres, zdr_NLM4_UNLOCKres)
ALIGNED_DECODER(NLM4_GRANTEDres, zdr_NLM4_GRANTEDres)

/* An aligned copy of the decoded arguments of `call`. */
#define ARGS(type, name, call) \
  type name;                   \
  memcpy(&name, (call)->body.cbody.args, sizeof(name))

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void peer_address(struct rpc_context *rpc, bool udp, char *out,
                         size_t cap) {
  struct sockaddr_storage ss;
  const struct sockaddr *sa = NULL;
  if (udp) {
    sa = rpc_get_recv_sockaddr(rpc);
  } else {
    socklen_t len = sizeof(ss);
    if (getpeername(rpc_get_fd(rpc), (struct sockaddr *)&ss, &len) == 0)
      sa = (struct sockaddr *)&ss;
  }
  snprintf(out, cap, "?");
  if (sa != NULL && sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
              (socklen_t)cap);
  } else if (sa != NULL && sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
              (socklen_t)cap);
  }
}

static void print_granted(const char *what, const NLM4_GRANTEDargs *a,
                          const char *from, bool udp) {
  char oh[2 * 64 + 4], fh[2 * NLM4_FH_MAX + 4], cookie[2 * 64 + 4];
  const char *ohs = a->lock.oh ? a->lock.oh : "";
  printf("%s caller=%s svid=%u oh=%s fh=%s offset=%" PRIu64 " len=%" PRIu64
         " excl=%u cookie=%s from=%s proto=%s\n",
         what, a->lock.caller_name ? a->lock.caller_name : "", a->lock.svid,
         hex_encode(ohs, strlen(ohs), oh, sizeof(oh)),
         hex_encode(a->lock.fh.data.data_val, a->lock.fh.data.data_len, fh,
                    sizeof(fh)),
         a->lock.l_offset, a->lock.l_len, a->exclusive,
         hex_encode(a->cookie.data.data_val, a->cookie.data.data_len, cookie,
                    sizeof(cookie)),
         from, udp ? "udp" : "tcp");
  fflush(stdout);
}

static int proc_null(struct rpc_context *rpc, struct rpc_msg *call) {
  return rpc_send_reply(rpc, call, NULL, (zdrproc_t)zdr_void, 0);
}

static int proc_granted(struct rpc_context *rpc, struct rpc_msg *call) {
  ARGS(NLM4_GRANTEDargs, args, call);
  const NLM4_GRANTEDargs *a = &args;
  bool udp = rpc == g_udp;
  char from[INET6_ADDRSTRLEN];
  peer_address(rpc, udp, from, sizeof(from));
  print_granted("GRANTED", a, from, udp);
  g_callbacks++;
  NLM4_GRANTEDres res;
  res.cookie = a->cookie;
  res.status = (nlmstat4)g_opts->reply_status;
  return rpc_send_reply(rpc, call, &res, (zdrproc_t)zdr_NLM4_GRANTEDres,
                        sizeof(res) + a->cookie.data.data_len);
}

/* GRANTED_RES goes to the sender's NLM as a new one-way call, the way
 * Linux lockd answers; the port comes from the sender's rpcbind. */
static void send_granted_res(const char *to, const nlm_cookie *cookie) {
  char err[256], buf[1024];
  int port = raw_rpcb_getport(to, NLM_PROGRAM, NLM_V4, true, err, sizeof(err));
  if (port < 0) {
    printf("GRANTED_RES RPC_ERROR %s\n", err);
    return;
  }
  NLM4_GRANTEDres res = {*cookie, (nlmstat4)g_opts->reply_status};
  ZDR z;
  zdrmem_create(&z, buf, sizeof(buf), ZDR_ENCODE);
  bool ok = zdr_NLM4_GRANTEDres(&z, &res);
  size_t len = zdr_getpos(&z);
  zdr_destroy(&z);
  if (!ok || raw_rpc_call(to, port, true, NLM_PROGRAM, NLM_V4,
                          NLM4_PROC_GRANTED_RES, 0, buf, len, NULL, 0, NULL,
                          GRANTED_RES_TIMEOUT_MS, err, sizeof(err)) != 0) {
    printf("GRANTED_RES RPC_ERROR %s\n", ok ? err : "encoding failed");
    return;
  }
  printf("GRANTED_RES %s to=%s:%d\n", nlm4_stat_name(g_opts->reply_status),
         to, port);
}

static int proc_granted_msg(struct rpc_context *rpc, struct rpc_msg *call) {
  ARGS(NLM4_GRANTEDargs, args, call);
  const NLM4_GRANTEDargs *a = &args;
  bool udp = rpc == g_udp;
  char from[INET6_ADDRSTRLEN];
  peer_address(rpc, udp, from, sizeof(from));
  print_granted("GRANTED_MSG", a, from, udp);
  g_callbacks++;
  if (g_opts->send_granted_res) send_granted_res(from, &a->cookie);
  fflush(stdout);
  return 0; /* _MSG procedures get no RPC reply */
}

/* *_RES calls answer our *_MSG calls: print "<NAME> <status> cookie=..".
 * They get no RPC reply. */
static void print_res(struct rpc_context *rpc, const char *what, int stat,
                      const nlm_cookie *c, const char *extra) {
  bool udp = rpc == g_udp;
  char from[INET6_ADDRSTRLEN], cookie[2 * 64 + 4];
  peer_address(rpc, udp, from, sizeof(from));
  printf("%s %s%s cookie=%s from=%s proto=%s\n", what, nlm4_stat_name(stat),
         extra, hex_encode(c->data.data_val, c->data.data_len, cookie,
                           sizeof(cookie)),
         from, udp ? "udp" : "tcp");
  fflush(stdout);
  g_callbacks++;
}

static int proc_test_res(struct rpc_context *rpc, struct rpc_msg *call) {
  ARGS(NLM4_TESTres, res, call);
  const NLM4_TESTres *r = &res;
  char extra[256] = "";
  if (r->reply.status == NLM4_DENIED) {
    const nlm4_holder *h = &r->reply.nlm4_testreply_u.lock.holder;
    snprintf(extra, sizeof(extra),
             " holder=svid:%u,excl:%u,offset:%" PRIu64 ",len:%" PRIu64,
             h->svid, h->exclusive, h->l_offset, h->l_len);
  }
  print_res(rpc, "TEST_RES", r->reply.status, &r->cookie, extra);
  return 0;
}

/* LOCK_RES, CANCEL_RES, UNLOCK_RES and GRANTED_RES share one layout. */
static int proc_status_res(struct rpc_context *rpc, struct rpc_msg *call,
                           const char *what) {
  ARGS(NLM4_LOCKres, res, call);
  const NLM4_LOCKres *r = &res;
  print_res(rpc, what, r->status, &r->cookie, "");
  return 0;
}
static int proc_lock_res(struct rpc_context *rpc, struct rpc_msg *call) {
  return proc_status_res(rpc, call, "LOCK_RES");
}
static int proc_cancel_res(struct rpc_context *rpc, struct rpc_msg *call) {
  return proc_status_res(rpc, call, "CANCEL_RES");
}
static int proc_unlock_res(struct rpc_context *rpc, struct rpc_msg *call) {
  return proc_status_res(rpc, call, "UNLOCK_RES");
}
static int proc_granted_res(struct rpc_context *rpc, struct rpc_msg *call) {
  return proc_status_res(rpc, call, "GRANTED_RES_RECEIVED");
}


/* The private statd -> lockd callback (proc 16, not in XNFS): rpc.statd's
 * struct status { string mon_name<SM_MAXSTRLEN>; int state;
 * opaque priv[16]; }, decoded with libnfs's zdr primitives. */
struct sm_status {
  char *mon_name;
  int32_t state;
  char priv[16];
};
typedef struct sm_status struct_sm_status;

static uint32_t zdr_sm_status(ZDR *z, struct sm_status *s) {
  return zdr_string(z, &s->mon_name, 1024) && zdr_int(z, &s->state) &&
         zdr_opaque(z, s->priv, sizeof(s->priv));
}
ALIGNED_DECODER(struct_sm_status, zdr_sm_status)

static int proc_sm_notify(struct rpc_context *rpc, struct rpc_msg *call) {
  ARGS(struct sm_status, st, call);
  const struct sm_status *s = &st;
  bool udp = rpc == g_udp;
  char from[INET6_ADDRSTRLEN], priv[2 * 16 + 4];
  peer_address(rpc, udp, from, sizeof(from));
  printf("SM_NOTIFY_CB mon_name=%s state=%d priv=%s from=%s proto=%s\n",
         s->mon_name ? s->mon_name : "", s->state,
         hex_encode(s->priv, sizeof(s->priv), priv, sizeof(priv)), from,
         udp ? "udp" : "tcp");
  fflush(stdout);
  g_callbacks++;
  return rpc_send_reply(rpc, call, NULL, (zdrproc_t)zdr_void, 0);
}

static uint32_t decode_void(ZDR *z, void *p, ...) {
  (void)z;
  (void)p;
  return 1;
}

static struct service_proc kProcs[] = {
    {0, proc_null, decode_void, 0},
    {NLM4_PROC_GRANTED, proc_granted, decode_NLM4_GRANTEDargs,
     sizeof(NLM4_GRANTEDargs)},
    {NLM4_PROC_GRANTED_MSG, proc_granted_msg, decode_NLM4_GRANTEDargs,
     sizeof(NLM4_GRANTEDargs)},
    {11, proc_test_res, decode_NLM4_TESTres, sizeof(NLM4_TESTres)},
    {12, proc_lock_res, decode_NLM4_LOCKres, sizeof(NLM4_LOCKres)},
    {13, proc_cancel_res, decode_NLM4_CANCres, sizeof(NLM4_CANCres)},
    {14, proc_unlock_res, decode_NLM4_UNLOCKres, sizeof(NLM4_UNLOCKres)},
    {NLM4_PROC_GRANTED_RES, proc_granted_res, decode_NLM4_GRANTEDres,
     sizeof(NLM4_GRANTEDres)},
    {NLM4_PROC_SM_NOTIFY, proc_sm_notify, decode_struct_sm_status,
     sizeof(struct sm_status)},
};
#define PROCS_COUNT ((int)(sizeof(kProcs) / sizeof(kProcs[0])))

static int bound_socket(int type, int port) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
      (type == SOCK_STREAM && listen(fd, TCP_CONNECTIONS_MAX) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

static struct rpc_context *server_context(int fd) {
  struct rpc_context *rpc = rpc_init_server_context(fd);
  if (rpc != NULL &&
      rpc_register_service(rpc, NLM_PROGRAM, NLM_V4, kProcs, PROCS_COUNT) !=
          0) {
    rpc_destroy_context(rpc);
    return NULL;
  }
  return rpc;
}

int serve_callbacks(const struct serve_options *o) {
  g_opts = o;
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);
  int ufd = bound_socket(SOCK_DGRAM, o->port);
  int lfd = bound_socket(SOCK_STREAM, o->port);
  if (ufd < 0 || lfd < 0) {
    fprintf(stderr, "nlm_client: cannot bind port %d: %s\n", o->port,
            strerror(errno));
    return 1;
  }
  struct rpc_context *udp = server_context(ufd);
  g_udp = udp;
  if (udp == NULL) {
    fprintf(stderr, "nlm_client: cannot create the UDP service\n");
    return 1;
  }
  if (o->register_pmap &&
      (raw_pmap_set(NLM_PROGRAM, NLM_V4, true, o->port) != 0 ||
       raw_pmap_set(NLM_PROGRAM, NLM_V4, false, o->port) != 0)) {
    fprintf(stderr, "nlm_client: rpcbind refused NLM v4 on port %d\n",
            o->port);
    return 1;
  }
  printf("serving port=%d registered=%d\n", o->port, o->register_pmap);
  fflush(stdout);

  struct rpc_context *tcp[TCP_CONNECTIONS_MAX] = {0};
  int64_t deadline = now_ms() + (int64_t)o->max_seconds * 1000;
  while (!g_stop && now_ms() < deadline &&
         (o->max_callbacks == 0 || g_callbacks < o->max_callbacks)) {
    struct pollfd pfds[2 + TCP_CONNECTIONS_MAX];
    int n = 0;
    pfds[n++] = (struct pollfd){lfd, POLLIN, 0};
    pfds[n++] = (struct pollfd){ufd, (short)rpc_which_events(udp), 0};
    int slot_of[TCP_CONNECTIONS_MAX];
    for (int i = 0; i < TCP_CONNECTIONS_MAX; i++) {
      if (tcp[i] == NULL) continue;
      slot_of[n - 2] = i;
      pfds[n++] = (struct pollfd){rpc_get_fd(tcp[i]),
                                  (short)rpc_which_events(tcp[i]), 0};
    }
    if (poll(pfds, (nfds_t)n, POLL_SLICE_MS) < 0) continue; /* EINTR */
    if (pfds[0].revents & POLLIN) {
      int cfd = accept(lfd, NULL, NULL);
      int slot = -1;
      for (int i = 0; i < TCP_CONNECTIONS_MAX && slot < 0; i++)
        if (tcp[i] == NULL) slot = i;
      if (cfd >= 0 && (slot < 0 || (tcp[slot] = server_context(cfd)) == NULL))
        close(cfd);
    }
    if (rpc_service(udp, pfds[1].revents) < 0) {
      fprintf(stderr, "nlm_client: UDP service: %s\n", rpc_get_error(udp));
    }
    for (int k = 2; k < n; k++) {
      int i = slot_of[k - 2];
      if (rpc_service(tcp[i], pfds[k].revents) < 0) {
        rpc_destroy_context(tcp[i]); /* peer closed or broke the stream */
        tcp[i] = NULL;
      }
    }
  }
  /* Flush replies still queued on TCP (a GRANTED answered just now). */
  for (int i = 0; i < TCP_CONNECTIONS_MAX; i++) {
    if (tcp[i] == NULL) continue;
    struct pollfd pfd = {rpc_get_fd(tcp[i]), POLLOUT, 0};
    if (rpc_which_events(tcp[i]) & POLLOUT && poll(&pfd, 1, 500) > 0)
      rpc_service(tcp[i], pfd.revents);
    rpc_destroy_context(tcp[i]);
  }
  if (o->register_pmap) raw_pmap_unset(NLM_PROGRAM, NLM_V4);
  printf("done callbacks=%d\n", g_callbacks);
  fflush(stdout);
  rpc_destroy_context(udp);
  close(lfd);
  return 0;
}

/*
 * nlm_ops: see nlm_ops.h.
 */
#include "tests/peers/nlm_ops.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nlm.h>

#include "tests/peers/raw_rpc.h"

/* NLM4 procedures libnfs 4.0 has no client call for (RFC 1813 NLM4). */
#define NLM4_PROC_SHARE 20
#define NLM4_PROC_UNSHARE 21
#define NLM4_PROC_NM_LOCK 22
#define NLM4_PROC_FREE_ALL 23
#define NLM4_PROC_TEST_MSG 6
#define NLM4_PROC_LOCK_MSG 7
#define NLM4_PROC_CANCEL_MSG 8
#define NLM4_PROC_UNLOCK_MSG 9
/* Encoded arguments/results of one call never exceed this (names and
 * handles are bounded above). */
#define RAW_BUF_BYTES 4096

static const struct {
  const char *name;
  int op;
} kOps[] = {
    {"null", OP_NULL},       {"test", OP_TEST},
    {"lock", OP_LOCK},       {"lock-block", OP_LOCK_BLOCK},
    {"unlock", OP_UNLOCK},   {"cancel", OP_CANCEL},
    {"share", OP_SHARE},     {"unshare", OP_UNSHARE},
    {"nm-lock", OP_NM_LOCK}, {"free-all", OP_FREE_ALL},
    {"sleep", OP_SLEEP},     {"test-msg", OP_TEST_MSG},
    {"lock-msg", OP_LOCK_MSG}, {"lock-block-msg", OP_LOCK_BLOCK_MSG},
    {"cancel-msg", OP_CANCEL_MSG}, {"unlock-msg", OP_UNLOCK_MSG},
};

int nlm_op_parse(const char *name) {
  for (size_t i = 0; i < sizeof(kOps) / sizeof(kOps[0]); i++) {
    if (strcmp(name, kOps[i].name) == 0) return kOps[i].op;
  }
  return -1;
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end = NULL;
  if (*s == '\0' || *s == '-') return -1;
  unsigned long long v = strtoull(s, &end, 0);
  if (*end != '\0') return -1;
  *out = v;
  return 0;
}

/* Owner handles go through libnfs as strings (its nlm.x declares
 * nlm4_oh as string<>), so they cannot contain a zero byte. */
static int decode_oh(const char *hex, unsigned char *out, int *len) {
  int n = hex_decode(hex, out, NLM_OPAQUE_MAX - 1);
  if (n < 0 || memchr(out, 0, (size_t)n) != NULL) return -1;
  *len = n;
  return 0;
}

int nlm_params_override(struct nlm_params *p, const char *spec) {
  char buf[4096];
  if (strlen(spec) >= sizeof(buf)) return -1;
  strcpy(buf, spec);
  for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv != NULL;
       kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (eq == NULL) goto bad;
    *eq = '\0';
    const char *k = kv, *v = eq + 1;
    uint64_t n = 0;
    bool numeric = parse_u64(v, &n) == 0;
    if (strcmp(k, "caller") == 0 && strlen(v) <= NLM_CALLER_NAME_MAX) {
      strcpy(p->caller, v);
    } else if (strcmp(k, "oh") == 0) {
      if (decode_oh(v, p->oh, &p->oh_len) != 0) goto bad;
    } else if (strcmp(k, "fh") == 0) {
      if ((p->fh_len = hex_decode(v, p->fh, NLM4_FH_MAX)) < 0) goto bad;
    } else if (strcmp(k, "cookie") == 0) {
      if ((p->cookie_len = hex_decode(v, p->cookie, NLM_OPAQUE_MAX)) < 0)
        goto bad;
    } else if (!numeric) {
      goto bad;
    } else if (strcmp(k, "svid") == 0) {
      p->svid = (uint32_t)n;
    } else if (strcmp(k, "offset") == 0) {
      p->offset = n;
    } else if (strcmp(k, "len") == 0) {
      p->length = n;
    } else if (strcmp(k, "excl") == 0) {
      p->exclusive = n != 0;
    } else if (strcmp(k, "reclaim") == 0) {
      p->reclaim = n != 0;
    } else if (strcmp(k, "state") == 0) {
      p->state = (int32_t)n;
    } else if (strcmp(k, "mode") == 0) {
      p->share_mode = (uint32_t)n;
    } else if (strcmp(k, "access") == 0) {
      p->share_access = (uint32_t)n;
    } else if (strcmp(k, "ms") == 0) {
      p->sleep_ms = (int)n;
    } else if (strcmp(k, "xid") == 0 && n != 0 && n <= UINT32_MAX) {
      p->xid = (uint32_t)n;
    } else {
      goto bad;
    }
  }
  return 0;
bad:
  fprintf(stderr, "nlm_client: bad override in '%s'\n", spec);
  return -1;
}

/* Storage for the variable-length fields of one call's arguments. */
struct call_buffers {
  char oh[NLM_OPAQUE_MAX + 16]; /* also fits "<svid>@<caller>" */
  unsigned char cookie[NLM_OPAQUE_MAX];
  int cookie_len;
};

static void fill_lock(const struct nlm_params *p, uint32_t call_number,
                      struct call_buffers *b, nlm4_lock *lock,
                      nlm_cookie *cookie) {
  if (p->oh_len >= 0) {
    memcpy(b->oh, p->oh, (size_t)p->oh_len);
    b->oh[p->oh_len] = '\0';
  } else {
    snprintf(b->oh, sizeof(b->oh), "%u@%s", p->svid, p->caller);
  }
  if (p->cookie_len >= 0) {
    memcpy(b->cookie, p->cookie, (size_t)p->cookie_len);
    b->cookie_len = p->cookie_len;
  } else {
    b->cookie[0] = (unsigned char)(call_number >> 24);
    b->cookie[1] = (unsigned char)(call_number >> 16);
    b->cookie[2] = (unsigned char)(call_number >> 8);
    b->cookie[3] = (unsigned char)call_number;
    b->cookie_len = 4;
  }
  memset(lock, 0, sizeof(*lock));
  lock->caller_name = (char *)p->caller;
  lock->fh.data.data_len = (u_int)p->fh_len;
  lock->fh.data.data_val = (char *)p->fh;
  lock->oh = b->oh;
  lock->svid = p->svid;
  lock->l_offset = p->offset;
  lock->l_len = p->length;
  cookie->data.data_len = (u_int)b->cookie_len;
  cookie->data.data_val = (char *)b->cookie;
}

/* What a reply callback extracts before libnfs frees the reply. */
struct reply {
  bool done;
  bool rpc_ok;
  char err[256];
  int stat;
  bool has_holder;
  nlm4_holder holder;
  char holder_oh[NLM_OPAQUE_MAX];
  bool cookie_mismatch;
  const struct call_buffers *sent;
};

static void check_cookie(struct reply *r, const nlm_cookie *c) {
  r->cookie_mismatch =
      c->data.data_len != (u_int)r->sent->cookie_len ||
      memcmp(c->data.data_val, r->sent->cookie, c->data.data_len) != 0;
}

static void on_reply(struct rpc_context *rpc, int status, void *data,
                     void *priv, int kind) {
  struct reply *r = (struct reply *)priv;
  r->done = true;
  if (status != RPC_STATUS_SUCCESS) {
    snprintf(r->err, sizeof(r->err), "%s",
             status == RPC_STATUS_ERROR && data ? (const char *)data
                                                : rpc_get_error(rpc));
    return;
  }
  r->rpc_ok = true;
  if (kind == OP_NULL) return;
  if (kind == OP_TEST) {
    NLM4_TESTres *res = (NLM4_TESTres *)data;
    check_cookie(r, &res->cookie);
    r->stat = res->reply.status;
    if (r->stat == NLM4_DENIED) {
      r->has_holder = true;
      r->holder = res->reply.nlm4_testreply_u.lock.holder;
      snprintf(r->holder_oh, sizeof(r->holder_oh), "%s",
               r->holder.oh ? r->holder.oh : "");
    }
    return;
  }
  /* LOCK, CANCEL and UNLOCK results share one layout: cookie, status. */
  NLM4_LOCKres *res = (NLM4_LOCKres *)data;
  check_cookie(r, &res->cookie);
  r->stat = res->status;
}

static void on_null(struct rpc_context *rpc, int s, void *d, void *p) {
  on_reply(rpc, s, d, p, OP_NULL);
}
static void on_test(struct rpc_context *rpc, int s, void *d, void *p) {
  on_reply(rpc, s, d, p, OP_TEST);
}
static void on_status(struct rpc_context *rpc, int s, void *d, void *p) {
  on_reply(rpc, s, d, p, OP_LOCK);
}

static int libnfs_call(struct nlm_target *t, int op,
                       const struct nlm_params *p, uint32_t call_number,
                       struct reply *r) {
  struct call_buffers b;
  nlm4_lock lock;
  nlm_cookie cookie;
  fill_lock(p, call_number, &b, &lock, &cookie);
  r->sent = &b;
  int rc = -1;
  switch (op) {
    case OP_NULL:
      rc = rpc_nlm4_null_async(t->rpc, on_null, r);
      break;
    case OP_TEST: {
      NLM4_TESTargs a = {cookie, p->exclusive, lock};
      rc = rpc_nlm4_test_async(t->rpc, on_test, &a, r);
      break;
    }
    case OP_LOCK:
    case OP_LOCK_BLOCK: {
      NLM4_LOCKargs a = {cookie, op == OP_LOCK_BLOCK, p->exclusive, lock,
                         p->reclaim, p->state};
      rc = rpc_nlm4_lock_async(t->rpc, on_status, &a, r);
      break;
    }
    case OP_CANCEL: {
      NLM4_CANCargs a = {cookie, true, p->exclusive, lock};
      rc = rpc_nlm4_cancel_async(t->rpc, on_status, &a, r);
      break;
    }
    case OP_UNLOCK: {
      NLM4_UNLOCKargs a = {cookie, lock};
      rc = rpc_nlm4_unlock_async(t->rpc, on_status, &a, r);
      break;
    }
  }
  if (rc != 0) {
    snprintf(r->err, sizeof(r->err), "send: %s", rpc_get_error(t->rpc));
    return -1;
  }
  if (rpc_wait(t->rpc, &r->done, t->timeout_ms, r->err, sizeof(r->err)) != 0)
    return -1;
  return r->rpc_ok ? 0 : -1;
}

/* Encodes the arguments of `op` into `z`; sets *proc. */
static bool encode_args(ZDR *z, int op, const struct nlm_params *p,
                        nlm4_lock *lock, nlm_cookie *cookie, uint32_t *proc) {
  switch (op) {
    case OP_NULL:
      *proc = 0;
      return true;
    case OP_TEST: {
      NLM4_TESTargs a = {*cookie, p->exclusive, *lock};
      *proc = NLM4_TEST;
      return zdr_NLM4_TESTargs(z, &a);
    }
    case OP_LOCK:
    case OP_LOCK_BLOCK:
    case OP_NM_LOCK: {
      NLM4_LOCKargs a = {*cookie, op == OP_LOCK_BLOCK, p->exclusive, *lock,
                         p->reclaim, p->state};
      *proc = op == OP_NM_LOCK ? NLM4_PROC_NM_LOCK : NLM4_LOCK;
      return zdr_NLM4_LOCKargs(z, &a);
    }
    case OP_CANCEL: {
      NLM4_CANCargs a = {*cookie, true, p->exclusive, *lock};
      *proc = NLM4_CANCEL;
      return zdr_NLM4_CANCargs(z, &a);
    }
    case OP_UNLOCK: {
      NLM4_UNLOCKargs a = {*cookie, *lock};
      *proc = NLM4_UNLOCK;
      return zdr_NLM4_UNLOCKargs(z, &a);
    }
    case OP_SHARE:
    case OP_UNSHARE: {
      /* nlm4_shareargs { cookie; nlm4_share share; bool reclaim; } */
      nlm4_share share = {lock->caller_name, lock->fh, lock->oh,
                          p->share_mode, p->share_access};
      uint32_t reclaim = p->reclaim;
      *proc = op == OP_SHARE ? NLM4_PROC_SHARE : NLM4_PROC_UNSHARE;
      return zdr_nlm_cookie(z, cookie) && zdr_nlm4_share(z, &share) &&
             zdr_bool(z, &reclaim);
    }
    default: { /* OP_FREE_ALL: nlm4_notify { string name; int32 state; } */
      char *name = (char *)p->caller;
      int32_t state = p->state;
      *proc = NLM4_PROC_FREE_ALL;
      return zdr_string(z, &name, NLM_CALLER_NAME_MAX) && zdr_int(z, &state);
    }
  }
}

/* Decodes the results of `op` from `z` into r. */
static bool decode_results(ZDR *z, int op, struct reply *r) {
  if (op == OP_NULL || op == OP_FREE_ALL) return true; /* void */
  if (op == OP_TEST) {
    NLM4_TESTres res;
    memset(&res, 0, sizeof(res));
    if (!zdr_NLM4_TESTres(z, &res)) return false;
    check_cookie(r, &res.cookie);
    r->stat = res.reply.status;
    if (r->stat == NLM4_DENIED) {
      r->has_holder = true;
      r->holder = res.reply.nlm4_testreply_u.lock.holder;
      snprintf(r->holder_oh, sizeof(r->holder_oh), "%s",
               r->holder.oh ? r->holder.oh : "");
    }
    return true;
  }
  /* nlm4_res { cookie; stat } and nlm4_shareres { cookie; stat; int
   * sequence } */
  nlm_cookie cookie = {{0, NULL}};
  nlmstat4 stat = 0;
  int32_t sequence = 0;
  bool ok = zdr_nlm_cookie(z, &cookie) && zdr_nlmstat4(z, &stat);
  if (ok && (op == OP_SHARE || op == OP_UNSHARE)) ok = zdr_int(z, &sequence);
  if (!ok) return false;
  check_cookie(r, &cookie);
  r->stat = (int)stat;
  return true;
}

/* Any operation through libtirpc: the procedures libnfs 4.0 lacks, and
 * every call that names its own xid (a retransmission, for duplicate
 * request cache tests). Arguments and results go through libnfs's zdr. */
static int raw_call(struct nlm_target *t, int op, const struct nlm_params *p,
                    uint32_t call_number, struct reply *r) {
  struct call_buffers b;
  nlm4_lock lock;
  nlm_cookie cookie;
  fill_lock(p, call_number, &b, &lock, &cookie);
  r->sent = &b;
  char args[RAW_BUF_BYTES], res[RAW_BUF_BYTES];
  ZDR z;
  zdrmem_create(&z, args, sizeof(args), ZDR_ENCODE);
  uint32_t proc = 0;
  bool ok = encode_args(&z, op, p, &lock, &cookie, &proc);
  size_t args_len = zdr_getpos(&z);
  zdr_destroy(&z);
  if (!ok) {
    snprintf(r->err, sizeof(r->err), "encoding arguments failed");
    return -1;
  }
  size_t res_len = 0;
  if (raw_rpc_call(t->server, t->port, t->udp, NLM_PROGRAM, NLM_V4, proc,
                   p->xid, args, args_len, res, sizeof(res), &res_len,
                   t->timeout_ms, r->err, sizeof(r->err)) != 0) {
    return -1;
  }
  r->rpc_ok = true;
  zdrmem_create(&z, res, (uint32_t)res_len, ZDR_DECODE);
  ok = decode_results(&z, op, r);
  zdr_destroy(&z);
  if (!ok) {
    r->rpc_ok = false;
    snprintf(r->err, sizeof(r->err), "undecodable reply of %zu bytes",
             res_len);
    return -1;
  }
  return 0;
}

/* TEST_MSG, LOCK_MSG, CANCEL_MSG, UNLOCK_MSG: the same arguments as the
 * synchronous calls, sent one-way; no RPC reply exists to wait for. */
static int msg_call(struct nlm_target *t, int op, const struct nlm_params *p,
                    uint32_t call_number, char *err, size_t err_len) {
  struct call_buffers b;
  nlm4_lock lock;
  nlm_cookie cookie;
  fill_lock(p, call_number, &b, &lock, &cookie);
  char args[RAW_BUF_BYTES];
  ZDR z;
  zdrmem_create(&z, args, sizeof(args), ZDR_ENCODE);
  uint32_t proc;
  bool ok;
  if (op == OP_TEST_MSG) {
    NLM4_TESTargs a = {cookie, p->exclusive, lock};
    ok = zdr_NLM4_TESTargs(&z, &a);
    proc = NLM4_PROC_TEST_MSG;
  } else if (op == OP_LOCK_MSG || op == OP_LOCK_BLOCK_MSG) {
    NLM4_LOCKargs a = {cookie, op == OP_LOCK_BLOCK_MSG, p->exclusive, lock,
                       p->reclaim, p->state};
    ok = zdr_NLM4_LOCKargs(&z, &a);
    proc = NLM4_PROC_LOCK_MSG;
  } else if (op == OP_CANCEL_MSG) {
    NLM4_CANCargs a = {cookie, true, p->exclusive, lock};
    ok = zdr_NLM4_CANCargs(&z, &a);
    proc = NLM4_PROC_CANCEL_MSG;
  } else {
    NLM4_UNLOCKargs a = {cookie, lock};
    ok = zdr_NLM4_UNLOCKargs(&z, &a);
    proc = NLM4_PROC_UNLOCK_MSG;
  }
  size_t len = zdr_getpos(&z);
  zdr_destroy(&z);
  if (!ok) {
    snprintf(err, err_len, "encoding arguments failed");
    return -1;
  }
  return raw_rpc_call(t->server, t->port, t->udp, NLM_PROGRAM, NLM_V4, proc,
                      p->xid, args, len, NULL, 0, NULL, t->timeout_ms, err,
                      err_len);
}

/* Per-call output, silenced in --summary runs. */
static void emit(const struct nlm_target *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void emit(const struct nlm_target *t, const char *fmt, ...) {
  if (t->quiet) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
}

int nlm_op_run(struct nlm_target *t, int op, const char *label,
               const struct nlm_params *p, uint32_t call_number,
               int *result) {
  *result = NLM_RESULT_NO_STATUS;
  if (op == OP_SLEEP) {
    int64_t until = now_ms() + p->sleep_ms;
    bool never = false;
    char ignored[64];
    /* Keep servicing the connection while idle (no reply is pending). */
    while (now_ms() < until) {
      rpc_wait(t->rpc, &never, (int)(until - now_ms()), ignored,
               sizeof(ignored));
    }
    emit(t, "%s SKIPPED slept=%dms\n", label, p->sleep_ms);
    fflush(stdout);
    return 0;
  }
  if (op >= OP_TEST_MSG) {
    char err[256];
    int rc = msg_call(t, op, p, call_number, err, sizeof(err));
    if (rc == 0) {
      char cookie[2 * 8 + 4];
      unsigned char c[4] = {(unsigned char)(call_number >> 24),
                            (unsigned char)(call_number >> 16),
                            (unsigned char)(call_number >> 8),
                            (unsigned char)call_number};
      emit(t, "%s SENT cookie=%s\n", label,
           p->cookie_len >= 0
               ? hex_encode(p->cookie, (size_t)p->cookie_len, cookie,
                            sizeof(cookie))
               : hex_encode(c, sizeof(c), cookie, sizeof(cookie)));
    } else {
      *result = NLM_RESULT_RPC_ERROR;
      emit(t, "%s RPC_ERROR %s\n", label, err);
    }
    fflush(stdout);
    return rc;
  }
  struct reply r;
  memset(&r, 0, sizeof(r));
  int rc = (op == OP_SHARE || op == OP_UNSHARE || op == OP_NM_LOCK ||
            op == OP_FREE_ALL || p->xid != 0)
               ? raw_call(t, op, p, call_number, &r)
               : libnfs_call(t, op, p, call_number, &r);
  if (rc != 0) {
    *result = NLM_RESULT_RPC_ERROR;
    emit(t, "%s RPC_ERROR %s\n", label, r.err);
  } else if (op == OP_NULL || op == OP_FREE_ALL) {
    emit(t, "%s NLM4_GRANTED void-reply\n", label);
  } else {
    *result = r.stat;
    emit(t, "%s %s", label, nlm4_stat_name(r.stat));
    if (r.has_holder) {
      char oh_hex[2 * 64 + 4];
      emit(t,
           " holder=svid:%u,excl:%u,offset:%" PRIu64 ",len:%" PRIu64
           ",oh:%s",
           r.holder.svid, r.holder.exclusive, r.holder.l_offset,
           r.holder.l_len,
           hex_encode(r.holder_oh, strlen(r.holder_oh), oh_hex,
                      sizeof(oh_hex)));
    }
    if (r.cookie_mismatch) emit(t, " cookie-mismatch");
    if (p->xid != 0) emit(t, " xid=0x%08x", raw_rpc_last_xid());
    emit(t, "\n");
  }
  fflush(stdout);
  return rc;
}

struct rpc_context *nlm_connect(const char *server, int *port, bool udp,
                                int timeout_ms) {
  return peer_connect("nlm_client", server, port, udp, NLM_PROGRAM, NLM_V4,
                      timeout_ms);
}

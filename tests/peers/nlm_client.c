/*
 * nlm_client: a raw NLM4 client (libnfs) for conformance tests and
 * benchmarks; an independent peer, sharing no code with lockwarden.
 *
 * Client mode performs a sequence of NLM4 calls on one connection and
 * prints one line per call ("<op> <NLM4_STATUS> [detail]", see nlm_ops.h):
 *
 *   nlm_client --server 198.18.0.2 [--port N] [--udp] --caller NAME
 *       --svid N (--fh HEX | --mount-export /export --file NAME [--create])
 *       [--oh HEX] [--offset N] [--length N] [--exclusive] [--state N]
 *       [--reclaim] [--mode N] [--access N] [--timeout-ms N]
 *       OP[:key=value,...] ...
 *
 *   OP: null test lock lock-block unlock cancel share unshare nm-lock
 *       free-all sleep, and the one-way test-msg lock-msg lock-block-msg
 *       cancel-msg unlock-msg (answers arrive as *_RES calls at the
 *       caller's --serve-callbacks process; they print "<op> SENT cookie=..");
 *       ":key=value" overrides a default for that call only
 *       (keys: caller svid oh fh offset len excl reclaim state cookie mode
 *       access ms), e.g.  lock:svid=2,excl=1  sleep:ms=200
 *   Without --port the server's rpcbind is asked for NLM v4.
 *   With --mount-export the file handle is resolved through libnfs (MOUNT3
 *   MNT + NFS3 LOOKUP, or CREATE with --create) and printed as "fh=HEX".
 *
 * Callback mode serves the NLM4 callbacks of blocked locks:
 *
 *   nlm_client --serve-callbacks --port 4045 [--no-register]
 *       [--count N] [--max-seconds S] [--reply-status NLM4_GRANTED]
 *       [--no-granted-res]
 *
 * Load mode (a peer for benchmarks): --repeat N runs the script N times on
 * the one connection; --summary replaces the per-call lines with one line
 * per script position and a total:
 *   summary op=lock calls=N rpc_errors=0 NLM4_GRANTED=N p50_us=.. p90_us=..
 *       p99_us=.. max_us=..
 *   summary total calls=N elapsed_ms=M calls_per_s=R
 *
 * Exit status: 0 if every call got a reply (whatever its NLM status),
 * 1 if a call failed at the RPC level, 2 on bad usage or setup failure.
 *
 * Thread-safety: single-threaded program.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>

#include "tests/peers/nlm_callbacks.h"
#include "tests/peers/nlm_ops.h"
#include "tests/peers/nlm_util.h"
#include "tests/peers/raw_rpc.h"

/* struct nfs_fh is opaque in libnfs's public headers; nfs_get_fh() returns
 * this two-field layout, unchanged from libnfs 1.x to 5.x. */
struct nfs_fh {
  int len;
  char *val;
};

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_SERVE_SECONDS 120
/* A script longer than this is a mistake, not a test. */
#define OPS_MAX 256
/* --repeat bound, and the latency samples kept (8 bytes each). */
#define REPEAT_MAX 10000000L
#define SAMPLES_MAX 10000000L
#define NLM4_STATUS_COUNT 10

/* Latencies and outcomes of one script position over all repetitions. */
struct op_stats {
  int64_t *lat_us;
  long n;
  long rpc_errors;
  long no_status;
  long by_status[NLM4_STATUS_COUNT];
  long other_status;
};

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void record(struct op_stats *s, int64_t lat_us, int result) {
  s->lat_us[s->n++] = lat_us;
  if (result == NLM_RESULT_RPC_ERROR) {
    s->rpc_errors++;
  } else if (result == NLM_RESULT_NO_STATUS) {
    s->no_status++;
  } else if (result >= 0 && result < NLM4_STATUS_COUNT) {
    s->by_status[result]++;
  } else {
    s->other_status++;
  }
}

static void print_summary(const char *label, struct op_stats *s) {
  if (s->n == 0) return;
  qsort(s->lat_us, (size_t)s->n, sizeof(int64_t), cmp_i64);
  printf("summary op=%s calls=%ld rpc_errors=%ld", label, s->n,
         s->rpc_errors);
  for (int i = 0; i < NLM4_STATUS_COUNT; i++)
    if (s->by_status[i]) printf(" %s=%ld", nlm4_stat_name(i), s->by_status[i]);
  if (s->other_status) printf(" other=%ld", s->other_status);
  if (s->no_status) printf(" no_status=%ld", s->no_status);
  printf(" p50_us=%" PRId64 " p90_us=%" PRId64 " p99_us=%" PRId64
         " max_us=%" PRId64 "\n",
         s->lat_us[s->n / 2], s->lat_us[s->n * 9 / 10],
         s->lat_us[s->n * 99 / 100], s->lat_us[s->n - 1]);
}

static void usage(void) {
  fprintf(stderr,
          "usage: nlm_client --server ADDR [--port N] [--udp] --caller NAME "
          "--svid N (--fh HEX | --mount-export PATH --file NAME [--create]) "
          "[--oh HEX] [--offset N] [--length N] [--exclusive] [--state N] "
          "[--reclaim] [--mode N] [--access N] [--timeout-ms N] "
          "OP[:k=v,...]...\n"
          "       nlm_client --serve-callbacks --port N [--no-register] "
          "[--count N] [--max-seconds S] [--reply-status NAME] "
          "[--no-granted-res]\n");
}

/* MOUNT3 MNT + NFS3 LOOKUP (or CREATE) through libnfs; fills p->fh. */
static int resolve_fh(const char *server, const char *export,
                      const char *file, bool create, int timeout_ms,
                      struct nlm_params *p) {
  struct nfs_context *nfs = nfs_init_context();
  if (nfs == NULL) return -1;
  nfs_set_timeout(nfs, timeout_ms);
  char path[1024];
  snprintf(path, sizeof(path), "/%s", file);
  struct nfsfh *fh = NULL;
  int rc = nfs_mount(nfs, server, export);
  if (rc == 0) {
    rc = create ? nfs_creat(nfs, path, 0644, &fh)
                : nfs_open(nfs, path, O_RDWR, &fh);
  }
  if (rc != 0) {
    fprintf(stderr, "nlm_client: %s:%s%s: %s\n", server, export, path,
            nfs_get_error(nfs));
    nfs_destroy_context(nfs);
    return -1;
  }
  const struct nfs_fh *raw = nfs_get_fh(fh);
  if (raw->len <= 0 || raw->len > NLM4_FH_MAX) {
    fprintf(stderr, "nlm_client: file handle of %d bytes\n", raw->len);
    rc = -1;
  } else {
    memcpy(p->fh, raw->val, (size_t)raw->len);
    p->fh_len = raw->len;
    char hex[2 * NLM4_FH_MAX + 4];
    printf("fh=%s\n", hex_encode(p->fh, (size_t)p->fh_len, hex, sizeof(hex)));
    fflush(stdout);
  }
  nfs_close(nfs, fh);
  nfs_umount(nfs);
  nfs_destroy_context(nfs);
  return rc;
}

enum {
  OPT_SERVER = 256, OPT_PORT, OPT_UDP, OPT_CALLER, OPT_SVID, OPT_FH, OPT_OH,
  OPT_OFFSET, OPT_LENGTH, OPT_EXCL, OPT_STATE, OPT_RECLAIM, OPT_MODE,
  OPT_ACCESS, OPT_TIMEOUT, OPT_EXPORT, OPT_FILE, OPT_CREATE, OPT_SERVE,
  OPT_NO_REGISTER, OPT_COUNT, OPT_MAX_SECONDS, OPT_REPLY_STATUS,
  OPT_NO_GRANTED_RES, OPT_REPEAT, OPT_SUMMARY,
};

static const struct option kLongOpts[] = {
    {"server", required_argument, 0, OPT_SERVER},
    {"port", required_argument, 0, OPT_PORT},
    {"udp", no_argument, 0, OPT_UDP},
    {"caller", required_argument, 0, OPT_CALLER},
    {"svid", required_argument, 0, OPT_SVID},
    {"fh", required_argument, 0, OPT_FH},
    {"oh", required_argument, 0, OPT_OH},
    {"offset", required_argument, 0, OPT_OFFSET},
    {"length", required_argument, 0, OPT_LENGTH},
    {"exclusive", no_argument, 0, OPT_EXCL},
    {"state", required_argument, 0, OPT_STATE},
    {"reclaim", no_argument, 0, OPT_RECLAIM},
    {"mode", required_argument, 0, OPT_MODE},
    {"access", required_argument, 0, OPT_ACCESS},
    {"timeout-ms", required_argument, 0, OPT_TIMEOUT},
    {"mount-export", required_argument, 0, OPT_EXPORT},
    {"file", required_argument, 0, OPT_FILE},
    {"create", no_argument, 0, OPT_CREATE},
    {"serve-callbacks", no_argument, 0, OPT_SERVE},
    {"no-register", no_argument, 0, OPT_NO_REGISTER},
    {"count", required_argument, 0, OPT_COUNT},
    {"max-seconds", required_argument, 0, OPT_MAX_SECONDS},
    {"reply-status", required_argument, 0, OPT_REPLY_STATUS},
    {"no-granted-res", no_argument, 0, OPT_NO_GRANTED_RES},
    {"repeat", required_argument, 0, OPT_REPEAT},
    {"summary", no_argument, 0, OPT_SUMMARY},
    {0, 0, 0, 0},
};

/* Turns one option into "key=value" for nlm_params_override, so the
 * command line and per-op overrides share one parser. */
static int set_param(struct nlm_params *p, const char *key, const char *v) {
  char spec[4200];
  snprintf(spec, sizeof(spec), "%s=%s", key, v);
  return nlm_params_override(p, spec);
}

int main(int argc, char **argv) {
  struct nlm_params defaults;
  memset(&defaults, 0, sizeof(defaults));
  defaults.oh_len = -1;
  defaults.cookie_len = -1;
  defaults.state = 1;
  snprintf(defaults.caller, sizeof(defaults.caller), "nlm-client");
  const char *server = NULL, *export = NULL, *file = NULL;
  int port = 0, timeout_ms = DEFAULT_TIMEOUT_MS;
  bool udp = false, create = false, serve = false, summary = false;
  long repeat = 1;
  struct serve_options so = {0, true, 0, DEFAULT_SERVE_SECONDS, 0, true};
  int bad = 0, c;
  while ((c = getopt_long(argc, argv, "", kLongOpts, NULL)) != -1) {
    switch (c) {
      case OPT_SERVER: server = optarg; break;
      case OPT_PORT: port = atoi(optarg); break;
      case OPT_UDP: udp = true; break;
      case OPT_CALLER: bad |= set_param(&defaults, "caller", optarg); break;
      case OPT_SVID: bad |= set_param(&defaults, "svid", optarg); break;
      case OPT_FH: bad |= set_param(&defaults, "fh", optarg); break;
      case OPT_OH: bad |= set_param(&defaults, "oh", optarg); break;
      case OPT_OFFSET: bad |= set_param(&defaults, "offset", optarg); break;
      case OPT_LENGTH: bad |= set_param(&defaults, "len", optarg); break;
      case OPT_EXCL: defaults.exclusive = true; break;
      case OPT_STATE: bad |= set_param(&defaults, "state", optarg); break;
      case OPT_RECLAIM: defaults.reclaim = true; break;
      case OPT_MODE: bad |= set_param(&defaults, "mode", optarg); break;
      case OPT_ACCESS: bad |= set_param(&defaults, "access", optarg); break;
      case OPT_TIMEOUT: timeout_ms = atoi(optarg); break;
      case OPT_EXPORT: export = optarg; break;
      case OPT_FILE: file = optarg; break;
      case OPT_CREATE: create = true; break;
      case OPT_SERVE: serve = true; break;
      case OPT_NO_REGISTER: so.register_pmap = false; break;
      case OPT_COUNT: so.max_callbacks = atoi(optarg); break;
      case OPT_MAX_SECONDS: so.max_seconds = atoi(optarg); break;
      case OPT_REPLY_STATUS:
        so.reply_status = nlm4_stat_parse(optarg);
        bad |= so.reply_status < 0;
        break;
      case OPT_NO_GRANTED_RES: so.send_granted_res = false; break;
      case OPT_REPEAT: repeat = atol(optarg); break;
      case OPT_SUMMARY: summary = true; break;
      default: bad = 1;
    }
  }
  if (bad || timeout_ms <= 0) {
    usage();
    return 2;
  }
  if (serve) {
    if (port <= 0 || port > 65535 || so.max_seconds <= 0) {
      usage();
      return 2;
    }
    so.port = port;
    return serve_callbacks(&so) == 0 ? 0 : 2;
  }
  if (server == NULL || (export == NULL) != (file == NULL) ||
      argc - optind > OPS_MAX || repeat < 1 || repeat > REPEAT_MAX ||
      repeat * (argc - optind) > SAMPLES_MAX) {
    usage();
    return 2;
  }
  if (export != NULL &&
      resolve_fh(server, export, file, create, timeout_ms, &defaults) != 0) {
    return 2;
  }
  if (optind == argc) return 0; /* only the file handle was wanted */
  /* Check the whole script before the first call goes out. */
  struct nlm_params *params = calloc((size_t)(argc - optind), sizeof(*params));
  int *ops = calloc((size_t)(argc - optind), sizeof(int));
  char **labels = calloc((size_t)(argc - optind), sizeof(char *));
  if (params == NULL || ops == NULL || labels == NULL) return 2;
  for (int i = optind; i < argc; i++) {
    int k = i - optind;
    labels[k] = strdup(argv[i]);
    char *colon = strchr(labels[k], ':');
    params[k] = defaults;
    if (colon != NULL) {
      *colon = '\0';
      if (nlm_params_override(&params[k], colon + 1) != 0) return 2;
    }
    ops[k] = nlm_op_parse(labels[k]);
    if (ops[k] < 0) {
      fprintf(stderr, "nlm_client: unknown operation '%s'\n", labels[k]);
      return 2;
    }
  }
  struct rpc_context *rpc = nlm_connect(server, &port, udp, timeout_ms);
  if (rpc == NULL) return 2;
  struct nlm_target t = {rpc, server, port, udp, timeout_ms, summary};
  int nops = argc - optind;
  struct op_stats *stats = calloc((size_t)nops, sizeof(*stats));
  if (stats == NULL) return 2;
  for (int k = 0; k < nops; k++) {
    stats[k].lat_us = malloc((size_t)repeat * sizeof(int64_t));
    if (stats[k].lat_us == NULL) return 2;
  }
  long failures = 0;
  uint32_t call_number = 0;
  int64_t start_us = now_us();
  for (long rep = 0; rep < repeat; rep++) {
    for (int k = 0; k < nops; k++) {
      int result;
      int64_t t0 = now_us();
      if (nlm_op_run(&t, ops[k], labels[k], &params[k], ++call_number,
                     &result) != 0)
        failures++;
      record(&stats[k], now_us() - t0, result);
    }
  }
  int64_t elapsed_us = now_us() - start_us;
  if (summary) {
    long calls = 0;
    for (int k = 0; k < nops; k++) {
      if (ops[k] == OP_SLEEP) continue;
      print_summary(labels[k], &stats[k]);
      calls += stats[k].n;
    }
    printf("summary total calls=%ld elapsed_ms=%" PRId64
           " calls_per_s=%.0f\n",
           calls, elapsed_us / 1000,
           elapsed_us > 0 ? calls * 1e6 / (double)elapsed_us : 0.0);
  }
  for (int k = 0; k < nops; k++) free(stats[k].lat_us);
  free(stats);
  rpc_destroy_context(rpc);
  raw_rpc_close();
  for (int k = 0; k < argc - optind; k++) free(labels[k]);
  free(labels);
  free(ops);
  free(params);
  return failures == 0 ? 0 : 1;
}

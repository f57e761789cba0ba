/*
 * nsm_client: a raw NSM v1 client (libnfs) for conformance tests of an
 * NSM service (rpc.statd, or lockwarden-gateway's replacement for it).
 *
 *   nsm_client --server ADDR [--port N] [--udp] [--timeout-ms N]
 *       OP[:key=value,...] ...
 *
 *   OP and its keys (defaults in brackets):
 *     null
 *     stat:name=N                              SM_STAT
 *     mon:name=N,my_name=M[localhost],prog=P[100021],vers=V[4],proc=C[16],
 *         priv=HEX[zeros, 16 bytes]           SM_MON
 *     unmon:name=N,my_name=..,prog=..,vers=..,proc=..      SM_UNMON
 *     unmon-all:my_name=..,prog=..,vers=..,proc=..         SM_UNMON_ALL
 *     simu-crash                               SM_SIMU_CRASH
 *     notify:name=N,state=S                    SM_NOTIFY
 *
 * One line per call: "stat STAT_SUCC state=3", "unmon state=5",
 * "notify void-reply", or "<op> RPC_ERROR <why>". Without --port the
 * server's rpcbind is asked for NSM v1. rpc.statd accepts MON, UNMON,
 * UNMON_ALL and SIMU_CRASH only from loopback, and MON only for my_prog
 * 100021; the private SM_NOTIFY callback it then sends to my_prog/my_vers/
 * my_proc is printed by nlm_client --serve-callbacks (register a service
 * with the same version).
 *
 * Exit status: 0 if every call got a reply, 1 if one failed at the RPC
 * level, 2 on bad usage or no connection.
 *
 * Thread-safety: single-threaded program.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nsm.h>

#include "tests/peers/nlm_util.h"

#define DEFAULT_TIMEOUT_MS 5000
#define SM_PRIV_SIZE 16
/* nfs-utils' SM_MAXSTRLEN. */
#define SM_NAME_MAX 1024
#define NLM_PROGRAM_NUMBER 100021
/* Linux lockd's private statd callback procedure. */
#define NLM_SM_NOTIFY_PROC 16

enum { NSM_OP_NULL, NSM_OP_STAT, NSM_OP_MON, NSM_OP_UNMON, NSM_OP_UNMON_ALL,
       NSM_OP_SIMU_CRASH, NSM_OP_NOTIFY };

struct nsm_params {
  char name[SM_NAME_MAX + 1];
  char my_name[SM_NAME_MAX + 1];
  int prog, vers, proc, state;
  char priv[SM_PRIV_SIZE];
};

static int parse_op(const char *s) {
  static const char *const kNames[] = {"null",      "stat",       "mon",
                                       "unmon",     "unmon-all", "simu-crash",
                                       "notify"};
  for (int i = 0; i < (int)(sizeof(kNames) / sizeof(kNames[0])); i++)
    if (strcmp(s, kNames[i]) == 0) return i;
  return -1;
}

static int parse_int(const char *v, int *out) {
  char *end = NULL;
  long n = strtol(v, &end, 0);
  if (*v == '\0' || *end != '\0') return -1;
  *out = (int)n;
  return 0;
}

static int apply_overrides(struct nsm_params *p, const char *spec) {
  char buf[4096];
  if (strlen(spec) >= sizeof(buf)) return -1;
  strcpy(buf, spec);
  for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv != NULL;
       kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (eq == NULL) return -1;
    *eq = '\0';
    const char *k = kv, *v = eq + 1;
    int rc = 0;
    if (strcmp(k, "name") == 0 && strlen(v) <= SM_NAME_MAX) {
      strcpy(p->name, v);
    } else if (strcmp(k, "my_name") == 0 && strlen(v) <= SM_NAME_MAX) {
      strcpy(p->my_name, v);
    } else if (strcmp(k, "prog") == 0) {
      rc = parse_int(v, &p->prog);
    } else if (strcmp(k, "vers") == 0) {
      rc = parse_int(v, &p->vers);
    } else if (strcmp(k, "proc") == 0) {
      rc = parse_int(v, &p->proc);
    } else if (strcmp(k, "state") == 0) {
      rc = parse_int(v, &p->state);
    } else if (strcmp(k, "priv") == 0) {
      memset(p->priv, 0, sizeof(p->priv));
      rc = hex_decode(v, (unsigned char *)p->priv, sizeof(p->priv)) < 0;
    } else {
      return -1;
    }
    if (rc != 0) return -1;
  }
  return 0;
}

struct result {
  bool done, ok;
  char err[256];
  char line[256];
};

static void on_result(struct rpc_context *rpc, int status, void *data,
                      void *priv, int op) {
  struct result *r = (struct result *)priv;
  r->done = true;
  if (status != RPC_STATUS_SUCCESS) {
    snprintf(r->err, sizeof(r->err), "%s",
             data ? (const char *)data : rpc_get_error(rpc));
    return;
  }
  r->ok = true;
  if (op == NSM_OP_STAT || op == NSM_OP_MON) {
    /* NSM1_STATres and NSM1_MONres: { res, state } */
    const NSM1_STATres *res = (const NSM1_STATres *)data;
    snprintf(r->line, sizeof(r->line), "%s state=%d",
             res->res == NSM_STAT_SUCC ? "STAT_SUCC" : "STAT_FAIL",
             res->state);
  } else if (op == NSM_OP_UNMON || op == NSM_OP_UNMON_ALL) {
    snprintf(r->line, sizeof(r->line), "state=%d",
             ((const NSM1_UNMONres *)data)->state);
  } else {
    snprintf(r->line, sizeof(r->line), "void-reply");
  }
}

#define CALLBACK(op)                                                   \
  static void on_##op(struct rpc_context *rpc, int s, void *d, void *p) { \
    on_result(rpc, s, d, p, op);                                       \
  }
CALLBACK(NSM_OP_NULL)
CALLBACK(NSM_OP_STAT)
CALLBACK(NSM_OP_MON)
CALLBACK(NSM_OP_UNMON)
CALLBACK(NSM_OP_UNMON_ALL)
CALLBACK(NSM_OP_SIMU_CRASH)
CALLBACK(NSM_OP_NOTIFY)

static int run_op(struct rpc_context *rpc, int op, const char *label,
                  struct nsm_params *p, int timeout_ms) {
  struct result r;
  memset(&r, 0, sizeof(r));
  nsm_my_id my_id = {p->my_name, p->prog, p->vers, p->proc};
  int rc = -1;
  switch (op) {
    case NSM_OP_NULL:
      rc = rpc_nsm1_null_async(rpc, on_NSM_OP_NULL, &r);
      break;
    case NSM_OP_STAT: {
      NSM1_STATargs a = {p->name};
      rc = rpc_nsm1_stat_async(rpc, on_NSM_OP_STAT, &a, &r);
      break;
    }
    case NSM_OP_MON: {
      NSM1_MONargs a;
      a.mon_id.mon_name = p->name;
      a.mon_id.my_id = my_id;
      memcpy(a.priv, p->priv, sizeof(a.priv));
      rc = rpc_nsm1_mon_async(rpc, on_NSM_OP_MON, &a, &r);
      break;
    }
    case NSM_OP_UNMON: {
      NSM1_UNMONargs a = {{p->name, my_id}};
      rc = rpc_nsm1_unmon_async(rpc, on_NSM_OP_UNMON, &a, &r);
      break;
    }
    case NSM_OP_UNMON_ALL: {
      NSM1_UNMONALLargs a = {my_id};
      rc = rpc_nsm1_unmonall_async(rpc, on_NSM_OP_UNMON_ALL, &a, &r);
      break;
    }
    case NSM_OP_SIMU_CRASH:
      rc = rpc_nsm1_simucrash_async(rpc, on_NSM_OP_SIMU_CRASH, &r);
      break;
    case NSM_OP_NOTIFY: {
      NSM1_NOTIFYargs a = {p->name, p->state};
      rc = rpc_nsm1_notify_async(rpc, on_NSM_OP_NOTIFY, &a, &r);
      break;
    }
  }
  if (rc != 0) {
    snprintf(r.err, sizeof(r.err), "send: %s", rpc_get_error(rpc));
  } else if (rpc_wait(rpc, &r.done, timeout_ms, r.err, sizeof(r.err)) != 0) {
    r.ok = false;
  }
  if (r.ok) {
    printf("%s %s\n", label, r.line);
  } else {
    printf("%s RPC_ERROR %s\n", label, r.err);
  }
  fflush(stdout);
  return r.ok ? 0 : -1;
}

static const struct option kLongOpts[] = {
    {"server", required_argument, 0, 's'},
    {"port", required_argument, 0, 'p'},
    {"udp", no_argument, 0, 'u'},
    {"timeout-ms", required_argument, 0, 't'},
    {0, 0, 0, 0},
};

int main(int argc, char **argv) {
  const char *server = NULL;
  int port = 0, timeout_ms = DEFAULT_TIMEOUT_MS, c;
  bool udp = false;
  while ((c = getopt_long(argc, argv, "", kLongOpts, NULL)) != -1) {
    switch (c) {
      case 's': server = optarg; break;
      case 'p': port = atoi(optarg); break;
      case 'u': udp = true; break;
      case 't': timeout_ms = atoi(optarg); break;
      default: server = NULL; optind = argc + 1; break;
    }
  }
  if (server == NULL || optind >= argc || timeout_ms <= 0) {
    fprintf(stderr,
            "usage: nsm_client --server ADDR [--port N] [--udp] "
            "[--timeout-ms N] OP[:key=value,...]...  (see nsm_client.c)\n");
    return 2;
  }
  int count = argc - optind;
  struct nsm_params *params = calloc((size_t)count, sizeof(*params));
  int *ops = calloc((size_t)count, sizeof(int));
  char **labels = calloc((size_t)count, sizeof(char *));
  if (params == NULL || ops == NULL || labels == NULL) return 2;
  for (int k = 0; k < count; k++) {
    labels[k] = strdup(argv[optind + k]);
    char *colon = strchr(labels[k], ':');
    struct nsm_params *p = &params[k];
    snprintf(p->my_name, sizeof(p->my_name), "localhost");
    p->prog = NLM_PROGRAM_NUMBER;
    p->vers = 4;
    p->proc = NLM_SM_NOTIFY_PROC;
    p->state = 1;
    if (colon != NULL) {
      *colon = '\0';
      if (apply_overrides(p, colon + 1) != 0) {
        fprintf(stderr, "nsm_client: bad arguments in '%s'\n",
                argv[optind + k]);
        return 2;
      }
    }
    if ((ops[k] = parse_op(labels[k])) < 0) {
      fprintf(stderr, "nsm_client: unknown operation '%s'\n", labels[k]);
      return 2;
    }
  }
  struct rpc_context *rpc = peer_connect("nsm_client", server, &port, udp,
                                         NSM_PROGRAM, NSM_V1, timeout_ms);
  if (rpc == NULL) return 2;
  int failures = 0;
  for (int k = 0; k < count; k++)
    if (run_op(rpc, ops[k], labels[k], &params[k], timeout_ms) != 0)
      failures++;
  rpc_destroy_context(rpc);
  for (int k = 0; k < count; k++) free(labels[k]);
  free(labels);
  free(ops);
  free(params);
  return failures == 0 ? 0 : 1;
}

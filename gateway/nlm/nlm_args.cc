#include "gateway/nlm/nlm_args.h"

#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway::nlm {
namespace {

std::string Str(const char* s) { return s == nullptr ? std::string() : s; }

NlmLock LockOf(const nlm_lock& l) {
  NlmLock out;
  out.caller_name = Str(l.caller_name);
  out.fh = NetobjBytes(l.fh);
  out.oh = NetobjBytes(l.oh);
  out.svid = static_cast<uint32_t>(l.svid);
  out.range = NormalizeRange32(l.l_offset, l.l_len);
  return out;
}

NlmLock LockOf(const nlm4_lock& l) {
  NlmLock out;
  out.caller_name = Str(l.caller_name);
  out.fh = NetobjBytes(l.fh);
  out.oh = NetobjBytes(l.oh);
  out.svid = static_cast<uint32_t>(l.svid);
  out.range = NormalizeRange64(l.l_offset, l.l_len);
  return out;
}

}  // namespace

std::string NetobjBytes(const netobj& obj) {
  if (obj.n_bytes == nullptr || obj.n_len == 0) return std::string();
  return std::string(obj.n_bytes, obj.n_len);
}

netobj NetobjOf(const std::string& bytes) {
  netobj obj;
  obj.n_len = static_cast<u_int>(bytes.size());
  obj.n_bytes = const_cast<char*>(bytes.data());
  return obj;
}

NlmArgs FromWire(const nlm_testargs& a, uint32_t vers) {
  NlmArgs out;
  out.vers = vers;
  out.cookie = NetobjBytes(a.cookie);
  out.exclusive = a.exclusive;
  out.lock = LockOf(a.alock);
  return out;
}

NlmArgs FromWire(const nlm4_testargs& a) {
  NlmArgs out;
  out.cookie = NetobjBytes(a.cookie);
  out.exclusive = a.exclusive;
  out.lock = LockOf(a.alock);
  return out;
}

NlmArgs FromWire(const nlm_lockargs& a, uint32_t vers) {
  NlmArgs out;
  out.vers = vers;
  out.cookie = NetobjBytes(a.cookie);
  out.block = a.block;
  out.exclusive = a.exclusive;
  out.reclaim = a.reclaim;
  out.state = a.state;
  out.lock = LockOf(a.alock);
  return out;
}

NlmArgs FromWire(const nlm4_lockargs& a) {
  NlmArgs out;
  out.cookie = NetobjBytes(a.cookie);
  out.block = a.block;
  out.exclusive = a.exclusive;
  out.reclaim = a.reclaim;
  out.state = a.state;
  out.lock = LockOf(a.alock);
  return out;
}

NlmArgs FromWire(const nlm_cancargs& a, uint32_t vers) {
  NlmArgs out;
  out.vers = vers;
  out.cookie = NetobjBytes(a.cookie);
  out.block = a.block;
  out.exclusive = a.exclusive;
  out.lock = LockOf(a.alock);
  return out;
}

NlmArgs FromWire(const nlm4_cancargs& a) {
  NlmArgs out;
  out.cookie = NetobjBytes(a.cookie);
  out.block = a.block;
  out.exclusive = a.exclusive;
  out.lock = LockOf(a.alock);
  return out;
}

NlmArgs FromWire(const nlm_unlockargs& a, uint32_t vers) {
  NlmArgs out;
  out.vers = vers;
  out.cookie = NetobjBytes(a.cookie);
  out.lock = LockOf(a.alock);
  return out;
}

NlmArgs FromWire(const nlm4_unlockargs& a) {
  NlmArgs out;
  out.cookie = NetobjBytes(a.cookie);
  out.lock = LockOf(a.alock);
  return out;
}

NlmShareArgs FromWire(const nlm_shareargs& a, uint32_t vers) {
  NlmShareArgs out;
  out.vers = vers;
  out.cookie = NetobjBytes(a.cookie);
  out.caller_name = Str(a.share.caller_name);
  out.fh = NetobjBytes(a.share.fh);
  out.oh = NetobjBytes(a.share.oh);
  out.mode = static_cast<uint32_t>(a.share.mode);
  out.access = static_cast<uint32_t>(a.share.access);
  out.reclaim = a.reclaim;
  return out;
}

NlmShareArgs FromWire(const nlm4_shareargs& a) {
  NlmShareArgs out;
  out.cookie = NetobjBytes(a.cookie);
  out.caller_name = Str(a.share.caller_name);
  out.fh = NetobjBytes(a.share.fh);
  out.oh = NetobjBytes(a.share.oh);
  out.mode = static_cast<uint32_t>(a.share.mode);
  out.access = static_cast<uint32_t>(a.share.access);
  out.reclaim = a.reclaim;
  return out;
}

NlmNotifyArgs FromWire(const nlm_notify& a) {
  return NlmNotifyArgs{Str(a.name), a.state};
}

NlmNotifyArgs FromWire(const nlm4_notify& a) {
  return NlmNotifyArgs{Str(a.name), a.state};
}

v1::LockOwner OwnerOf(const NlmLock& lock) {
  v1::LockOwner owner;
  owner.set_client_name(lock.caller_name);
  owner.set_svid(lock.svid);
  owner.set_oh(lock.oh);
  return owner;
}

v1::ShareOwner ShareOwnerOf(const NlmShareArgs& share) {
  v1::ShareOwner owner;
  owner.set_client_name(share.caller_name);
  owner.set_oh(share.oh);
  return owner;
}

v1::ShareAccess ShareAccessOf(uint32_t access) {
  if (access > fsa_RW) return v1::SHARE_ACCESS_UNSPECIFIED;
  return static_cast<v1::ShareAccess>(access + 1);
}

v1::ShareDeny ShareDenyOf(uint32_t mode) {
  if (mode > fsm_DRW) return v1::SHARE_DENY_UNSPECIFIED;
  return static_cast<v1::ShareDeny>(mode + 1);
}

NlmHolder HolderOf(const v1::LockHolder& holder) {
  NlmHolder out;
  out.exclusive = holder.exclusive();
  out.svid = holder.owner().svid();
  out.oh = holder.owner().oh();
  out.range = FromProto(holder.range());
  return out;
}

absl::Status WithWireResult(ResultKind kind, uint32_t vers,
                            const std::string& cookie,
                            const NlmOutcome& outcome,
                            const WireResultSink& sink) {
  const bool v4 = !Is32BitVersion(vers);
  switch (kind) {
    case ResultKind::kRes: {
      if (v4) {
        nlm4_res r{};
        r.cookie = NetobjOf(cookie);
        r.stat.stat = ToNlm4Stats(outcome.status);
        return sink(XdrProc(xdr_nlm4_res), &r);
      }
      nlm_res r{};
      r.cookie = NetobjOf(cookie);
      r.stat.stat = ToNlmStats(outcome.status);
      return sink(XdrProc(xdr_nlm_res), &r);
    }
    case ResultKind::kTestRes: {
      // The server's DENIED always names a holder; were it missing, the
      // zeroed holder below is what goes on the wire.
      const bool denied = outcome.status == v1::LOCK_STATUS_DENIED &&
                          outcome.holder.has_value();
      if (v4) {
        nlm4_testres r{};
        r.cookie = NetobjOf(cookie);
        r.stat.stat = ToNlm4Stats(outcome.status);
        if (denied) {
          nlm4_holder& h = r.stat.nlm4_testrply_u.holder;
          h.exclusive = outcome.holder->exclusive;
          h.svid = static_cast<int>(outcome.holder->svid);
          h.oh = NetobjOf(outcome.holder->oh);
          h.l_offset = outcome.holder->range.offset;
          h.l_len = outcome.holder->range.length;
        }
        return sink(XdrProc(xdr_nlm4_testres), &r);
      }
      nlm_testres r{};
      r.cookie = NetobjOf(cookie);
      r.test_stat.stat = ToNlmStats(outcome.status);
      if (denied) {
        std::optional<Range32> range = RangeFor32(outcome.holder->range);
        if (!range.has_value()) {
          // The holder starts where v1/v3 cannot point: FBIG, which v1/v3
          // spell DENIED_NOLOCKS.
          r.test_stat.stat = ToNlmStats(v1::LOCK_STATUS_FBIG);
        } else {
          nlm_holder& h = r.test_stat.nlm_testrply_u.holder;
          h.exclusive = outcome.holder->exclusive;
          h.svid = static_cast<int>(outcome.holder->svid);
          h.oh = NetobjOf(outcome.holder->oh);
          h.l_offset = range->offset;
          h.l_len = range->length;
        }
      }
      return sink(XdrProc(xdr_nlm_testres), &r);
    }
    case ResultKind::kShareRes: {
      if (v4) {
        nlm4_shareres r{};
        r.cookie = NetobjOf(cookie);
        r.stat = ToNlm4Stats(outcome.status);
        r.sequence = outcome.share_sequence;
        return sink(XdrProc(xdr_nlm4_shareres), &r);
      }
      nlm_shareres r{};
      r.cookie = NetobjOf(cookie);
      r.stat = ToNlmStats(outcome.status);
      r.sequence = outcome.share_sequence;
      return sink(XdrProc(xdr_nlm_shareres), &r);
    }
  }
  return absl::InternalError("unknown result kind");
}

v1::LockStatus StatusOf(const nlm_res& res) {
  return FromNlmStats(static_cast<uint32_t>(res.stat.stat));
}

v1::LockStatus StatusOf(const nlm4_res& res) {
  return FromNlm4Stats(static_cast<uint32_t>(res.stat.stat));
}

}  // namespace lockwarden::gateway::nlm

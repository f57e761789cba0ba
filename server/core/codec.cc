#include "server/core/codec.h"

#include <cstring>
#include <limits>

namespace lockwarden::core::codec {
namespace {

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

// Key builders run for every record of every delta: one allocation each
// (no resize of a short string, which reallocates).
std::string IdKey(const char* prefix, uint64_t id) {
  char hex[16];
  for (int i = 15; i >= 0; --i) {
    hex[i] = kHex[id & 0xf];
    id >>= 4;
  }
  const size_t n = std::strlen(prefix);
  std::string key;
  key.reserve(n + sizeof(hex));
  key.append(prefix, n);
  key.append(hex, sizeof(hex));
  return key;
}

namespace {

// Lower-case hex digits (at most 16) to a number; false on any other byte.
bool ParseHex(absl::string_view s, uint64_t* v) {
  uint64_t x = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    x = (x << 4) | static_cast<uint64_t>(d);
  }
  *v = x;
  return true;
}

}  // namespace

bool ParseIdKey(absl::string_view key, uint64_t* id) {
  return key.size() == 18 && ParseHex(key.substr(2), id);
}

std::string DedupRingKey(uint64_t ring, uint64_t slot) {
  char key[19] = {kDedupPrefix[0], kDedupPrefix[1]};
  key[10] = '/';
  for (int i = 0; i < 8; ++i) {
    key[9 - i] = kHex[ring & 0xf];
    key[18 - i] = kHex[slot & 0xf];
    ring >>= 4;
    slot >>= 4;
  }
  return std::string(key, sizeof(key));
}

bool ParseDedupRingKey(absl::string_view key, uint64_t* ring, uint64_t* slot) {
  if (key.size() != 19 || key.substr(0, 2) != kDedupPrefix || key[10] != '/') {
    return false;
  }
  return ParseHex(key.substr(2, 8), ring) && ParseHex(key.substr(11), slot);
}

std::string EncodeDedupRecord(const DedupRecord& d) {
  Writer w;
  w.Bytes(d.request_id);
  w.U8(d.command_kind);
  WriteReply(w, d.reply);
  w.U64(d.sequence);
  return std::move(w).Finish();
}

bool DecodeDedupRecord(absl::string_view key, absl::string_view value,
                       DedupRecord* out) {
  Reader r(value);
  if (!r.Version() || !r.Bytes(&out->request_id) || !r.U8(&out->command_kind) ||
      !ReadReply(r, &out->reply)) {
    return false;
  }
  uint64_t ring = 0, slot = 0;
  if (ParseDedupRingKey(key, &ring, &slot)) {
    return r.U64(&out->sequence) && r.Done() && ring > 0 && out->sequence > 0 &&
           out->sequence % ring == slot;
  }
  // The layout before the ring: the key's id is the sequence, no field.
  return key.substr(0, 2) == kDedupPrefix && ParseIdKey(key, &out->sequence) &&
         out->sequence > 0 && r.Done();
}

void Writer::U64(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

bool Reader::Version() {
  uint8_t v;
  if (!U8(&v)) return false;
  return v == kVersion ? true : Fail();
}

bool Reader::U64(uint64_t* v) {
  if (!ok_) return false;
  uint64_t result = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (in_.empty()) return Fail();
    uint8_t byte = static_cast<uint8_t>(in_.front());
    in_.remove_prefix(1);
    if (shift == 63 && byte > 1) return Fail();  // Past 64 bits.
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return Fail();
}

bool Reader::I64(int64_t* v) {
  uint64_t u;
  if (!U64(&u)) return false;
  *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  return true;
}

bool Reader::I32(int32_t* v) {
  int64_t w;
  if (!I64(&w)) return false;
  if (w < std::numeric_limits<int32_t>::min() ||
      w > std::numeric_limits<int32_t>::max()) {
    return Fail();
  }
  *v = static_cast<int32_t>(w);
  return true;
}

bool Reader::U8(uint8_t* v) {
  if (!ok_ || in_.empty()) return Fail();
  *v = static_cast<uint8_t>(in_.front());
  in_.remove_prefix(1);
  return true;
}

bool Reader::Bool(bool* v) {
  uint8_t b;
  if (!U8(&b)) return false;
  if (b > 1) return Fail();
  *v = b == 1;
  return true;
}

bool Reader::Bytes(std::string* s) {
  uint64_t n;
  if (!U64(&n)) return false;
  if (n > in_.size()) return Fail();
  s->assign(in_.data(), n);
  in_.remove_prefix(n);
  return true;
}

bool Reader::OwnerFields(Owner* o) {
  uint64_t svid;
  if (!Bytes(&o->client) || !U64(&svid) || !Bytes(&o->oh)) return false;
  if (svid > std::numeric_limits<uint32_t>::max()) return Fail();
  o->svid = static_cast<uint32_t>(svid);
  return true;
}

void WriteReply(Writer& w, const Reply& r) {
  w.U8(static_cast<uint8_t>(r.status));
  w.Bytes(r.message);
  w.Bool(r.holder.has_value());
  if (r.holder) {
    w.OwnerFields(r.holder->owner);
    w.U64(r.holder->range.offset);
    w.U64(r.holder->range.length);
    w.Bool(r.holder->exclusive);
  }
  w.U64(r.fencing_token);
  w.I32(r.nsm_state);
  w.Bool(r.stale);
  w.U64(r.released);
}

bool ReadReply(Reader& r, Reply* out) {
  uint8_t status;
  bool has_holder;
  if (!r.U8(&status) || status > static_cast<uint8_t>(LockStatus::kNotFound) ||
      !r.Bytes(&out->message) || !r.Bool(&has_holder)) {
    return false;
  }
  out->status = static_cast<LockStatus>(status);
  out->holder.reset();
  if (has_holder) {
    Holder h;
    if (!r.OwnerFields(&h.owner) || !r.U64(&h.range.offset) ||
        !r.U64(&h.range.length) || !r.Bool(&h.exclusive)) {
      return false;
    }
    out->holder = std::move(h);
  }
  uint64_t released;
  if (!r.U64(&out->fencing_token) || !r.I32(&out->nsm_state) ||
      !r.Bool(&out->stale) || !r.U64(&released) ||
      released > std::numeric_limits<uint32_t>::max()) {
    return false;
  }
  out->released = static_cast<uint32_t>(released);
  return true;
}

void WriteEvent(Writer& w, const Event& e) {
  w.Bytes(e.gateway);
  w.I64(e.created_ms);
  if (const auto* g = std::get_if<GrantedEvent>(&e.body)) {
    w.U8(0);
    w.Bytes(g->fh);
    w.OwnerFields(g->owner);
    w.U64(g->range.offset);
    w.U64(g->range.length);
    w.Bool(g->exclusive);
    w.U64(g->fencing_token);
    w.I32(g->client_state);
    w.Bytes(g->callback);
    w.Bytes(g->cookie);
  } else if (const auto* n = std::get_if<SmNotifyEvent>(&e.body)) {
    w.U8(1);
    w.Bytes(n->target);
    w.Bytes(n->mon_name);
    w.I32(n->state);
    if (!n->addresses.empty()) {  // Optional trailing field.
      w.U64(n->addresses.size());
      for (const std::string& a : n->addresses) w.Bytes(a);
    }
  } else {
    const auto& s = std::get<StatusCallbackEvent>(e.body);
    w.U8(2);
    w.Bytes(s.mon_name);
    w.I32(s.state);
    w.Bytes(s.my_id.my_name);
    w.U64(s.my_id.my_prog);
    w.U64(s.my_id.my_vers);
    w.U64(s.my_id.my_proc);
    w.Bytes(s.priv);
  }
}

namespace {

bool ReadU32(Reader& r, uint32_t* v) {
  uint64_t w;
  if (!r.U64(&w) || w > std::numeric_limits<uint32_t>::max()) return false;
  *v = static_cast<uint32_t>(w);
  return true;
}

}  // namespace

bool ReadEvent(Reader& r, Event* out) {
  uint8_t kind;
  if (!r.Bytes(&out->gateway) || !r.I64(&out->created_ms) || !r.U8(&kind)) {
    return false;
  }
  switch (kind) {
    case 0: {
      GrantedEvent g;
      if (!r.Bytes(&g.fh) || !r.OwnerFields(&g.owner) ||
          !r.U64(&g.range.offset) || !r.U64(&g.range.length) ||
          !r.Bool(&g.exclusive) || !r.U64(&g.fencing_token) ||
          !r.I32(&g.client_state) || !r.Bytes(&g.callback) ||
          !r.Bytes(&g.cookie)) {
        return false;
      }
      out->body = std::move(g);
      return true;
    }
    case 1: {
      SmNotifyEvent n;
      if (!r.Bytes(&n.target) || !r.Bytes(&n.mon_name) || !r.I32(&n.state)) {
        return false;
      }
      if (!r.Done()) {  // Optional trailing addresses.
        uint64_t count;
        if (!r.U64(&count) || count == 0 || count > kClientAddressesMax) {
          return false;
        }
        n.addresses.resize(count);
        for (std::string& a : n.addresses) {
          if (!r.Bytes(&a) || a.empty()) return false;
        }
      }
      out->body = std::move(n);
      return true;
    }
    case 2: {
      StatusCallbackEvent s;
      if (!r.Bytes(&s.mon_name) || !r.I32(&s.state) ||
          !r.Bytes(&s.my_id.my_name) || !ReadU32(r, &s.my_id.my_prog) ||
          !ReadU32(r, &s.my_id.my_vers) || !ReadU32(r, &s.my_id.my_proc) ||
          !r.Bytes(&s.priv)) {
        return false;
      }
      out->body = std::move(s);
      return true;
    }
    default:
      return false;
  }
}

std::string EncodeImportMarker(const ImportMarker& m) {
  Writer w;
  w.U64(m.key_count);
  w.I64(m.started_ms);
  w.Bytes(m.source);
  return std::move(w).Finish();
}

bool DecodeImportMarker(absl::string_view value, ImportMarker* out) {
  Reader r(value);
  return r.Version() && r.U64(&out->key_count) && r.I64(&out->started_ms) &&
         r.Bytes(&out->source) && r.Done();
}

}  // namespace lockwarden::core::codec

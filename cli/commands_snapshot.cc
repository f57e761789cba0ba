// snapshot export / snapshot import: AdminService.ExportSnapshot and
// ImportSnapshot between the server and a local file.
//
// File format (lockwardenctl snapshot file, version 1):
//   8 bytes  magic "LWSNAP1\n"
//   then the stream's SnapshotChunk messages (snapshot.proto) in stream
//   order, each preceded by its byte length as a base-128 varint (protobuf's
//   "delimited" framing): the header chunk first, then entry chunks.
// The file therefore holds exactly what the server streamed; its integrity
// rests on the header's key count, byte count and SHA-256, which export
// checks before the file gets its final name and the server checks again on
// import.
//
// Export writes "<file>.partial", verifies count, bytes and checksum,
// fsyncs, then renames it to <file>: an interrupted or corrupt export never
// leaves a file that looks complete. Progress goes to stderr once a second.
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;

constexpr char kSnapshotFileMagic[] = "LWSNAP1\n";
constexpr size_t kSnapshotFileMagicBytes = 8;
constexpr absl::Duration kProgressInterval = absl::Seconds(1);

// SHA-256 over the entries as snapshot.proto defines it.
class EntryDigest {
 public:
  EntryDigest() : context_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(context_, EVP_sha256(), nullptr);
  }
  ~EntryDigest() { EVP_MD_CTX_free(context_); }
  EntryDigest(const EntryDigest&) = delete;
  EntryDigest& operator=(const EntryDigest&) = delete;

  void Add(const v1::SnapshotEntry& entry) {
    AddField(entry.key());
    AddField(entry.value());
  }

  std::string Finish() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(context_, digest, &size);
    return std::string(reinterpret_cast<char*>(digest), size);
  }

 private:
  void AddField(const std::string& bytes) {
    const uint32_t size = static_cast<uint32_t>(bytes.size());
    const unsigned char length[4] = {
        static_cast<unsigned char>(size >> 24),
        static_cast<unsigned char>(size >> 16),
        static_cast<unsigned char>(size >> 8), static_cast<unsigned char>(size)};
    EVP_DigestUpdate(context_, length, sizeof(length));
    EVP_DigestUpdate(context_, bytes.data(), bytes.size());
  }

  EVP_MD_CTX* context_;
};

// Prints "snapshot export: 1234/5000 keys, 1.2 MiB" at most once a second.
class Progress {
 public:
  Progress(std::ostream& err, absl::string_view what)
      : err_(err), what_(what), next_(absl::Now() + kProgressInterval) {}

  void Update(uint64_t keys, uint64_t key_total, uint64_t bytes, bool final) {
    const absl::Time now = absl::Now();
    if (!final && now < next_) return;
    if (final && !printed_) return;  // short runs stay quiet
    next_ = now + kProgressInterval;
    printed_ = true;
    err_ << absl::StrFormat("%s: %d/%d keys, %.1f MiB%s\n", what_, keys,
                            key_total, static_cast<double>(bytes) / (1 << 20),
                            final ? ", done" : "");
  }

 private:
  std::ostream& err_;
  std::string what_;
  absl::Time next_;
  bool printed_ = false;
};

struct SnapshotFlags {
  std::string file;
  std::string stream_timeout = "30m";
  bool force = false;
  bool state_is_current = false;
  bool abandon = false;  // import: abandon an interrupted import instead.
  std::string reason;
};

// Counts of what an export received.
struct ExportTotals {
  v1::SnapshotHeader header;
  uint64_t keys = 0;
  uint64_t bytes = 0;
};

absl::Status CheckExport(const ExportTotals& totals, EntryDigest* digest) {
  if (totals.keys != totals.header.key_count() ||
      totals.bytes != totals.header.total_bytes()) {
    return absl::DataLossError(absl::StrCat(
        "snapshot export: received ", totals.keys, " keys / ", totals.bytes,
        " bytes, header announced ", totals.header.key_count(), " / ",
        totals.header.total_bytes()));
  }
  if (digest->Finish() != totals.header.checksum_sha256()) {
    return absl::DataLossError("snapshot export: SHA-256 mismatch");
  }
  return absl::OkStatus();
}

// One ExportSnapshot attempt into `partial` (created afresh). Problems on
// our side (file, verification) go to *local_error; the return value is the
// stream's status.
grpc::Status ExportAttempt(grpc::ClientContext* context,
                           const std::shared_ptr<grpc::Channel>& channel,
                           const std::string& partial, const std::string& reason,
                           std::ostream& err, ExportTotals* totals,
                           absl::Status* local_error) {
  *totals = ExportTotals();
  *local_error = absl::OkStatus();
  const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    *local_error = absl::InvalidArgumentError(
        absl::StrCat("--file: cannot create '", partial, "'"));
    return grpc::Status::OK;
  }
  google::protobuf::io::FileOutputStream output(fd);
  output.SetCloseOnDelete(true);
  EntryDigest digest;
  Progress progress(err, "snapshot export");
  v1::ExportSnapshotRequest request;
  request.set_reason(reason);
  auto reader =
      v1::AdminService::NewStub(channel)->ExportSnapshot(context, request);
  bool ok = output.WriteAliasedRaw(kSnapshotFileMagic, kSnapshotFileMagicBytes);
  v1::ExportSnapshotResponse message;
  bool have_header = false;
  // Bounded by the stream deadline.
  while (ok && reader->Read(&message)) {
    const v1::SnapshotChunk& chunk = message.chunk();
    if (chunk.has_header() == have_header) {
      *local_error = absl::DataLossError(
          "snapshot export: the header must come first and only once");
      context->TryCancel();
      break;
    }
    if (chunk.has_header()) {
      totals->header = chunk.header();
      have_header = true;
    }
    for (const v1::SnapshotEntry& entry : chunk.entries().entries()) {
      digest.Add(entry);
      ++totals->keys;
      totals->bytes += entry.key().size() + entry.value().size();
    }
    ok = google::protobuf::util::SerializeDelimitedToZeroCopyStream(chunk,
                                                                    &output);
    progress.Update(totals->keys, totals->header.key_count(), totals->bytes,
                    false);
  }
  grpc::Status finished = reader->Finish();
  if (!ok && local_error->ok()) {
    *local_error = absl::InternalError(
        absl::StrCat("snapshot export: writing '", partial, "' failed"));
  }
  if (!finished.ok() || !local_error->ok()) return finished;
  *local_error = have_header
                     ? CheckExport(*totals, &digest)
                     : absl::DataLossError("snapshot export: no header");
  if (local_error->ok() && (!output.Flush() || fsync(fd) != 0)) {
    *local_error = absl::InternalError(
        absl::StrCat("snapshot export: flushing '", partial, "' failed"));
  }
  progress.Update(totals->keys, totals->header.key_count(), totals->bytes,
                  true);
  return grpc::Status::OK;
}

void PrintExport(CommandEnv* env, Connection* connection,
                 const std::string& file, const ExportTotals& totals) {
  if (env->format() == OutputFormat::kJson) {
    nlohmann::json document = nlohmann::json::object();
    document["operation"] = "snapshot export";
    document["server"] = connection->answered_address();
    document["file"] = file;
    document["header"] = MessageToJson(totals.header);
    env->PrintJson(document);
    return;
  }
  KeyValueList lines;
  lines.Add("file", file);
  lines.Add("keys", absl::StrCat(totals.keys));
  lines.Add("bytes", absl::StrCat(totals.bytes));
  lines.Add("fencing_token", absl::StrCat(totals.header.fencing_token()));
  lines.Add("sha256", ToHex(totals.header.checksum_sha256()));
  lines.Add("created_at", FormatTimestamp(totals.header.created_at()));
  env->out() << lines.Render();
}

int RunExport(CommandEnv* env, const SnapshotFlags& flags) {
  absl::StatusOr<absl::Duration> timeout =
      ParseDurationFlag(flags.stream_timeout, "--stream-timeout");
  if (!timeout.ok()) return env->Fail(timeout.status());
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  const std::string partial = flags.file + ".partial";
  const std::string reason =
      flags.reason.empty() ? DefaultReason("snapshot export") : flags.reason;
  ExportTotals totals;
  absl::Status local_error;
  CallOptions options;
  options.timeout = *timeout;
  absl::Status status = (*connection)->Call(
      "ExportSnapshot",
      [&](grpc::ClientContext* context,
          const std::shared_ptr<grpc::Channel>& channel) {
        return ExportAttempt(context, channel, partial, reason, env->err(),
                             &totals, &local_error);
      },
      options);
  if (status.ok() && local_error.ok() &&
      std::rename(partial.c_str(), flags.file.c_str()) != 0) {
    local_error = absl::InternalError(
        absl::StrCat("snapshot export: renaming to '", flags.file, "' failed"));
  }
  if (!status.ok() || !local_error.ok()) {
    std::remove(partial.c_str());
    // A local verdict explains a stream we cancelled ourselves.
    return env->Fail(!local_error.ok() ? local_error : status);
  }
  PrintExport(env, *connection, flags.file, totals);
  return kExitOk;
}

// One ImportSnapshot attempt streaming `file`; `first` carries the options.
// Problems with the file go to *local_error (the stream is then cancelled,
// so the server applies nothing); the return value is the stream's status.
grpc::Status ImportAttempt(grpc::ClientContext* context,
                           const std::shared_ptr<grpc::Channel>& channel,
                           const std::string& file,
                           const v1::ImportSnapshotRequest& first,
                           std::ostream& err,
                           v1::ImportSnapshotResponse* response,
                           absl::Status* local_error) {
  *local_error = absl::OkStatus();
  const int fd = open(file.c_str(), O_RDONLY);
  if (fd < 0) {
    *local_error = absl::InvalidArgumentError(
        absl::StrCat("--file: cannot open '", file, "'"));
    return grpc::Status::OK;
  }
  google::protobuf::io::FileInputStream input(fd);
  input.SetCloseOnDelete(true);
  char magic[kSnapshotFileMagicBytes];
  bool magic_ok = false;
  {
    // Scoped: the destructor hands unread bytes back to `input`.
    google::protobuf::io::CodedInputStream coded(&input);
    magic_ok = coded.ReadRaw(magic, sizeof(magic)) &&
               std::string(magic, sizeof(magic)) == kSnapshotFileMagic;
  }
  if (!magic_ok) {
    *local_error = absl::InvalidArgumentError(
        absl::StrCat("--file: '", file, "' is not a lockwardenctl snapshot"));
    return grpc::Status::OK;
  }
  auto writer =
      v1::AdminService::NewStub(channel)->ImportSnapshot(context, response);
  Progress progress(err, "snapshot import");
  v1::ImportSnapshotRequest message = first;
  uint64_t keys = 0, bytes = 0, key_total = 0;
  bool clean_eof = false;
  // Bounded by the file's length: every round consumes a chunk. A fresh
  // CodedInputStream per chunk (inside the call) keeps its 2 GiB
  // total-bytes limit from capping the file size.
  while (true) {
    v1::SnapshotChunk chunk;
    if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(
            &chunk, &input, &clean_eof)) {
      break;
    }
    if (chunk.has_header()) key_total = chunk.header().key_count();
    for (const v1::SnapshotEntry& entry : chunk.entries().entries()) {
      ++keys;
      bytes += entry.key().size() + entry.value().size();
    }
    *message.mutable_chunk() = std::move(chunk);
    // A failed write means the server ended the stream: Finish says why.
    if (!writer->Write(message)) return writer->Finish();
    message.Clear();
    progress.Update(keys, key_total, bytes, false);
  }
  if (!clean_eof) {
    *local_error = absl::DataLossError(absl::StrCat(
        "--file: '", file, "' is truncated or corrupt after ", keys, " keys"));
    context->TryCancel();
    writer->Finish();
    return grpc::Status::OK;
  }
  writer->WritesDone();
  progress.Update(keys, key_total, bytes, true);
  return writer->Finish();
}

int RunImport(CommandEnv* env, const SnapshotFlags& flags) {
  if (flags.abandon && (!flags.file.empty() || flags.force || flags.state_is_current)) {
    return env->Fail(absl::InvalidArgumentError(
        "--abandon: takes no --file, --force or --state-is-current"));
  }
  if (!flags.abandon && flags.file.empty()) {
    return env->Fail(absl::InvalidArgumentError("--file: required (or --abandon)"));
  }
  absl::StatusOr<absl::Duration> timeout =
      ParseDurationFlag(flags.stream_timeout, "--stream-timeout");
  if (!timeout.ok()) return env->Fail(timeout.status());
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  v1::ImportSnapshotRequest first;
  first.set_request_id(NewRequestId());
  first.set_reason(flags.reason.empty() ? DefaultReason("snapshot import")
                                        : flags.reason);
  first.set_force(flags.force);
  first.set_state_is_current(flags.state_is_current);
  first.set_abandon(flags.abandon);
  v1::ImportSnapshotResponse response;
  absl::Status local_error;
  CallOptions options;
  options.timeout = *timeout;
  absl::Status status = (*connection)->Call(
      "ImportSnapshot",
      [&](grpc::ClientContext* context,
          const std::shared_ptr<grpc::Channel>& channel) {
        if (flags.abandon) {  // One message, no snapshot.
          auto writer =
              v1::AdminService::NewStub(channel)->ImportSnapshot(context, &response);
          if (writer->Write(first)) writer->WritesDone();
          return writer->Finish();
        }
        return ImportAttempt(context, channel, flags.file, first, env->err(),
                             &response, &local_error);
      },
      options);
  if (!local_error.ok()) return env->Fail(local_error);
  if (!status.ok()) return env->Fail(status);
  return PrintMutation(env, *connection,
                       flags.abandon ? "snapshot import --abandon" : "snapshot import",
                       first.request_id(),
                       response);
}

}  // namespace

void AddSnapshotCommands(CLI::App& app, CommandEnv* env) {
  CLI::App* group = Group(app, "snapshot", "Export or import the whole store");
  auto export_flags = std::make_shared<SnapshotFlags>();
  CLI::App* export_command = group->add_subcommand(
      "export", "Stream a consistent snapshot of the store into --file");
  export_command->add_option("--file", export_flags->file, "Output file")
      ->required();
  export_command->add_option("--stream-timeout", export_flags->stream_timeout,
                             "Deadline of the whole transfer")
      ->capture_default_str();
  export_command->add_option("--reason", export_flags->reason, "Why (audit log)");
  SetAction(export_command, env,
            [env, export_flags] { return RunExport(env, *export_flags); });

  auto import_flags = std::make_shared<SnapshotFlags>();
  CLI::App* import_command = group->add_subcommand(
      "import", "Replace the whole store with the snapshot in --file");
  import_command->add_option("--file", import_flags->file,
                             "Input file (required unless --abandon)");
  import_command->add_flag("--force", import_flags->force,
                           "Replace a store that holds state");
  import_command->add_flag(
      "--state-is-current", import_flags->state_is_current,
      "The snapshot comes from a stopped server with nothing changed since: "
      "keep state numbers, no grace, no SM_NOTIFY");
  import_command->add_flag(
      "--abandon", import_flags->abandon,
      "Instead of importing: abandon an interrupted import (the server refuses "
      "to serve until then); leaves an empty lock state, every gateway "
      "identity reset");
  import_command->add_option("--stream-timeout", import_flags->stream_timeout,
                             "Deadline of the whole transfer")
      ->capture_default_str();
  import_command->add_option("--reason", import_flags->reason, "Why (audit log)");
  SetAction(import_command, env,
            [env, import_flags] { return RunImport(env, *import_flags); });
}

}  // namespace lockwarden::cli

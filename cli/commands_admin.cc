// Inspection commands on AdminService and grpc.health.v1: the paginated
// listings (locks, waiters, shares, clients, monitors, gateways, events),
// the wait-for graph, grace status, server status and the health check.
// Listings follow next_page_token to the end or to --limit.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;
using google::protobuf::RepeatedPtrField;

// Pages one listing fetches at most: with the server's page size limit of
// 1000 this is ten million rows, far past any real lock table, and keeps a
// server that keeps returning tokens from looping us forever.
constexpr int kListPagesMax = 10000;

struct PageFlags {
  int32_t page_size = 0;
  uint64_t limit = 0;
};

void AddPageFlags(CLI::App* command, PageFlags* flags) {
  command->add_option("--page-size", flags->page_size,
                      "Items per RPC (1..1000; 0 = server default 100)")
      ->check(CLI::Range(0, 1000));
  command->add_option("--limit", flags->limit,
                      "Stop after this many items (0 = all)");
}

// The items of every page of a List RPC, and what the server says the total
// is.
template <typename Item>
struct Listing {
  std::vector<Item> items;
  uint64_t total_size = 0;
  bool truncated = false;  // stopped at --limit with more available
};

template <typename Item, typename Request, typename Response>
absl::StatusOr<Listing<Item>> FetchAll(
    Connection* connection, absl::string_view rpc_name, Request request,
    const PageFlags& pages,
    grpc::Status (v1::AdminService::Stub::*method)(grpc::ClientContext*,
                                                   const Request&, Response*),
    const RepeatedPtrField<Item>& (Response::*items)() const) {
  Listing<Item> listing;
  request.set_page_size(pages.page_size);
  for (int page = 0; page < kListPagesMax; ++page) {
    Response response;
    absl::Status status = connection->Call(
        rpc_name, [&](grpc::ClientContext* context,
                      const std::shared_ptr<grpc::Channel>& channel) {
          auto stub = v1::AdminService::NewStub(channel);
          return ((*stub).*method)(context, request, &response);
        });
    if (!status.ok()) return status;
    listing.total_size = response.total_size();
    for (const Item& item : (response.*items)()) {
      if (pages.limit != 0 && listing.items.size() >= pages.limit) {
        listing.truncated = true;
        return listing;
      }
      listing.items.push_back(item);
    }
    if (response.next_page_token().empty()) return listing;
    if (pages.limit != 0 && listing.items.size() >= pages.limit) {
      listing.truncated = true;
      return listing;
    }
    request.set_page_token(response.next_page_token());
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      rpc_name, ": more than ", kListPagesMax, " pages; use --limit"));
}

// Prints a listing: JSON {"<key>": [...], "total_size": N, "truncated": b}
// or the table `render` builds.
template <typename Item>
int PrintListing(CommandEnv* env, const std::string& key,
                 const Listing<Item>& listing,
                 const std::function<Table(const std::vector<Item>&)>& render) {
  if (env->format() == OutputFormat::kJson) {
    nlohmann::json document = nlohmann::json::object();
    nlohmann::json array = nlohmann::json::array();
    for (const Item& item : listing.items) array.push_back(MessageToJson(item));
    document[key] = std::move(array);
    document["total_size"] = listing.total_size;
    document["truncated"] = listing.truncated;
    env->PrintJson(document);
  } else {
    env->out() << render(listing.items).Render();
    if (listing.truncated) {
      env->out() << "(showing " << listing.items.size() << " of "
                 << listing.total_size << "; raise --limit for more)\n";
    }
  }
  return kExitOk;
}

// --fh, --client, --svid, --oh, --gateway filters (LockFilter).
struct FilterFlags {
  std::string fh_hex;
  std::string client;
  uint32_t svid = 0;
  CLI::Option* svid_option = nullptr;
  std::string oh_hex;
  std::string gateway;
};

void AddFilterFlags(CLI::App* command, FilterFlags* flags) {
  command->add_option("--fh", flags->fh_hex, "Only this file handle (hex)");
  command->add_option("--client", flags->client, "Only this client host");
  flags->svid_option = command->add_option(
      "--svid", flags->svid, "Only this exact owner (with --client, --oh)");
  command->add_option("--oh", flags->oh_hex, "Owner handle of --svid (hex)");
  command->add_option("--gateway", flags->gateway,
                      "Only state acquired through this gateway identity");
}

absl::StatusOr<v1::LockFilter> DecodeFilter(const FilterFlags& flags) {
  v1::LockFilter filter;
  absl::StatusOr<std::string> fh = ParseHexBytes(flags.fh_hex, "--fh");
  if (!fh.ok()) return fh.status();
  filter.set_file_handle(*std::move(fh));
  filter.set_client_name(flags.client);
  filter.set_gateway_id(flags.gateway);
  absl::StatusOr<std::string> oh = ParseHexBytes(flags.oh_hex, "--oh");
  if (!oh.ok()) return oh.status();
  const bool exact_owner = flags.svid_option->count() > 0 || !oh->empty();
  if (exact_owner) {
    if (flags.client.empty()) {
      return absl::InvalidArgumentError(
          "--svid/--oh select an exact owner and need --client");
    }
    filter.mutable_owner()->set_client_name(flags.client);
    filter.mutable_owner()->set_svid(flags.svid);
    filter.mutable_owner()->set_oh(*std::move(oh));
  }
  return filter;
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

Table LocksTable(const std::vector<v1::Lock>& locks) {
  Table table({"FILE_HANDLE", "CLIENT", "SVID", "OH", "RANGE", "MODE",
               "GATEWAY", "TOKEN", "STATE", "GRANTED_AT"});
  for (const v1::Lock& lock : locks) {
    std::string state = lock.confirmed() ? "held" : "unconfirmed";
    if (lock.awaiting_reclaim()) state = "awaiting-reclaim";
    table.AddRow({ToHex(lock.file_handle()), lock.owner().client_name(),
                  absl::StrCat(lock.owner().svid()), HexOrDash(lock.owner().oh()),
                  FormatRange(lock.range()), FormatMode(lock.exclusive()),
                  OrDash(lock.gateway_id()), absl::StrCat(lock.fencing_token()),
                  state, FormatTimestamp(lock.granted_at())});
  }
  return table;
}

Table WaitersTable(const std::vector<v1::Waiter>& waiters) {
  Table table({"FILE_HANDLE", "POS", "CLIENT", "SVID", "OH", "RANGE", "MODE",
               "GATEWAY", "QUEUED_AT", "BLOCKED_BY"});
  for (const v1::Waiter& waiter : waiters) {
    std::vector<std::string> blockers;
    for (const v1::LockHolder& holder : waiter.blocked_by()) {
      blockers.push_back(FormatOwner(holder.owner()));
    }
    table.AddRow({ToHex(waiter.file_handle()),
                  absl::StrCat(waiter.queue_position()),
                  waiter.owner().client_name(),
                  absl::StrCat(waiter.owner().svid()),
                  HexOrDash(waiter.owner().oh()), FormatRange(waiter.range()),
                  FormatMode(waiter.exclusive()), OrDash(waiter.gateway_id()),
                  FormatTimestamp(waiter.queued_at()),
                  blockers.empty() ? "-" : absl::StrJoin(blockers, ",")});
  }
  return table;
}

Table SharesTable(const std::vector<v1::Share>& shares) {
  Table table({"FILE_HANDLE", "CLIENT", "OH", "ACCESS", "DENY", "GATEWAY",
               "RECLAIM", "GRANTED_AT"});
  for (const v1::Share& share : shares) {
    table.AddRow({ToHex(share.file_handle()), share.owner().client_name(),
                  HexOrDash(share.owner().oh()), ShortEnumName(share.access()),
                  ShortEnumName(share.deny()), OrDash(share.gateway_id()),
                  share.awaiting_reclaim() ? "yes" : "no",
                  FormatTimestamp(share.granted_at())});
  }
  return table;
}

Table ClientsTable(const std::vector<v1::Client>& clients) {
  Table table({"CLIENT", "NSM_STATE", "LOCKS", "SHARES", "WAITERS", "GATEWAYS",
               "ADDRESSES", "LAST_ACTIVITY"});
  for (const v1::Client& client : clients) {
    table.AddRow({client.client_name(), absl::StrCat(client.nsm_state()),
                  absl::StrCat(client.lock_count()),
                  absl::StrCat(client.share_count()),
                  absl::StrCat(client.waiter_count()),
                  OrDash(absl::StrJoin(client.gateway_ids(), ",")),
                  OrDash(absl::StrJoin(client.addresses(), ",")),
                  FormatTimestamp(client.last_activity_at())});
  }
  return table;
}

Table MonitorsTable(const std::vector<v1::Monitor>& monitors) {
  Table table({"GATEWAY", "MON_NAME", "KIND", "MY_NAME", "PROG/VERS/PROC",
               "CREATED_AT"});
  for (const v1::Monitor& monitor : monitors) {
    const bool has_id = monitor.has_my_id();
    table.AddRow({monitor.gateway_id(), monitor.mon_name(),
                  ShortEnumName(monitor.kind()),
                  has_id ? OrDash(monitor.my_id().my_name()) : "-",
                  has_id ? absl::StrCat(monitor.my_id().my_prog(), "/",
                                        monitor.my_id().my_vers(), "/",
                                        monitor.my_id().my_proc())
                         : "-",
                  FormatTimestamp(monitor.created_at())});
  }
  return table;
}

Table GatewaysTable(const std::vector<v1::Gateway>& gateways) {
  Table table({"GATEWAY", "NSM_STATE", "GRACE_ENDS", "DRAINING", "STREAMS",
               "PENDING_GRANTS", "PENDING_NOTIFY", "LOCKS", "MONITORED",
               "LAST_SEEN"});
  for (const v1::Gateway& gateway : gateways) {
    table.AddRow({gateway.gateway_id(), absl::StrCat(gateway.nsm_state()),
                  gateway.in_grace() ? FormatTimestamp(gateway.grace_ends_at())
                                     : "-",
                  gateway.draining() ? "yes" : "no",
                  absl::StrCat(gateway.streams_size()),
                  absl::StrCat(gateway.pending_grant_events()),
                  absl::StrCat(gateway.pending_notification_events()),
                  absl::StrCat(gateway.lock_count()),
                  absl::StrCat(gateway.monitored_client_count()),
                  FormatTimestamp(gateway.last_seen_at())});
  }
  return table;
}

std::string DescribeEvent(const v1::PendingEvent& event) {
  if (event.has_grant()) {
    const v1::GrantEvent& grant = event.grant();
    return absl::StrCat("grant fh=", ToHex(grant.file_handle()), " ",
                        FormatOwner(grant.owner()), " ",
                        FormatMode(grant.exclusive()), " ",
                        FormatRange(grant.range()));
  }
  if (event.notification().has_sm_notify()) {
    const v1::SmNotify& notify = event.notification().sm_notify();
    return absl::StrCat("sm_notify to ", notify.target_host(), " state ",
                        notify.state());
  }
  const v1::StatusCallback& callback = event.notification().status_callback();
  return absl::StrCat("status_callback ", callback.mon_name(), " state ",
                      callback.state(), " to ", callback.my_id().my_name());
}

Table EventsTable(const std::vector<v1::PendingEvent>& events) {
  Table table({"GATEWAY", "KIND", "SEQUENCE", "EVENT", "ATTEMPTS",
               "CREATED_AT", "LAST_SENT_AT", "LAST_ERROR"});
  for (const v1::PendingEvent& event : events) {
    const bool grant = event.has_grant();
    table.AddRow({event.gateway_id(), grant ? "grant" : "notification",
                  absl::StrCat(grant ? event.grant().sequence()
                                     : event.notification().sequence()),
                  DescribeEvent(event), absl::StrCat(event.attempts()),
                  FormatTimestamp(event.created_at()),
                  FormatTimestamp(event.last_sent_at()),
                  OrDash(event.last_error())});
  }
  return table;
}

// Runs a listing command end to end.
template <typename Item, typename Request, typename Response>
int RunList(CommandEnv* env, absl::string_view rpc_name, const Request& request,
            const PageFlags& pages,
            grpc::Status (v1::AdminService::Stub::*method)(
                grpc::ClientContext*, const Request&, Response*),
            const RepeatedPtrField<Item>& (Response::*items)() const,
            const std::string& key,
            const std::function<Table(const std::vector<Item>&)>& render) {
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  auto listing = FetchAll<Item, Request, Response>(*connection, rpc_name,
                                                   request, pages, method, items);
  if (!listing.ok()) return env->Fail(listing.status());
  return PrintListing<Item>(env, key, *listing, render);
}

// Adds "<group> list" with filter and page flags for a LockFilter listing.
template <typename Item, typename Request, typename Response>
void AddFilteredList(CLI::App& app, CommandEnv* env, const std::string& group,
                     const std::string& description, absl::string_view rpc_name,
                     grpc::Status (v1::AdminService::Stub::*method)(
                         grpc::ClientContext*, const Request&, Response*),
                     const RepeatedPtrField<Item>& (Response::*items)() const,
                     Table (*render)(const std::vector<Item>&)) {
  auto filter = std::make_shared<FilterFlags>();
  auto pages = std::make_shared<PageFlags>();
  CLI::App* list =
      Group(app, group, absl::StrCat("Inspect ", group))
          ->add_subcommand("list", description);
  AddFilterFlags(list, filter.get());
  AddPageFlags(list, pages.get());
  std::string rpc(rpc_name);
  SetAction(list, env, [=] {
    absl::StatusOr<v1::LockFilter> decoded = DecodeFilter(*filter);
    if (!decoded.ok()) return env->Fail(decoded.status());
    Request request;
    *request.mutable_filter() = *decoded;
    return RunList<Item, Request, Response>(env, rpc, request, *pages, method,
                                            items, group, render);
  });
}

CLI::App* AddList(CLI::App& app, const std::string& group,
                  const std::string& description, PageFlags* pages) {
  CLI::App* list = Group(app, group, absl::StrCat("Inspect ", group))
                       ->add_subcommand("list", description);
  AddPageFlags(list, pages);
  return list;
}

void AddOtherLists(CLI::App& app, CommandEnv* env) {
  {
    auto pages = std::make_shared<PageFlags>();
    auto request = std::make_shared<v1::ListClientsRequest>();
    CLI::App* list = AddList(app, "clients", "List client hosts", pages.get());
    list->add_option("--prefix", *request->mutable_client_name_prefix(),
                     "Only clients whose name starts with this");
    list->add_option("--gateway", *request->mutable_gateway_id(),
                     "Only clients holding state through this identity");
    SetAction(list, env, [=] {
      return RunList<v1::Client, v1::ListClientsRequest,
                     v1::ListClientsResponse>(
          env, "ListClients", *request, *pages,
          &v1::AdminService::Stub::ListClients,
          &v1::ListClientsResponse::clients, "clients", &ClientsTable);
    });
  }
  {
    auto pages = std::make_shared<PageFlags>();
    auto request = std::make_shared<v1::ListMonitorsRequest>();
    auto kind = std::make_shared<std::string>("any");
    CLI::App* list =
        AddList(app, "monitors", "List NSM monitor registrations", pages.get());
    list->add_option("--gateway", *request->mutable_gateway_id(),
                     "Only this gateway identity");
    list->add_option("--mon-name", *request->mutable_mon_name(),
                     "Only this monitored host");
    list->add_option("--kind", *kind, "any, sm-mon or lock")
        ->check(CLI::IsMember({"any", "sm-mon", "lock"}));
    SetAction(list, env, [=] {
      v1::ListMonitorsRequest copy = *request;
      copy.set_kind(*kind == "sm-mon" ? v1::MONITOR_KIND_SM_MON
                    : *kind == "lock" ? v1::MONITOR_KIND_LOCK
                                      : v1::MONITOR_KIND_UNSPECIFIED);
      return RunList<v1::Monitor, v1::ListMonitorsRequest,
                     v1::ListMonitorsResponse>(
          env, "ListMonitors", copy, *pages,
          &v1::AdminService::Stub::ListMonitors,
          &v1::ListMonitorsResponse::monitors, "monitors", &MonitorsTable);
    });
  }
  {
    auto pages = std::make_shared<PageFlags>();
    auto request = std::make_shared<v1::ListGatewaysRequest>();
    CLI::App* list =
        AddList(app, "gateways", "List gateway identities", pages.get());
    list->add_option("--gateway", *request->mutable_gateway_id(),
                     "Only this gateway identity");
    SetAction(list, env, [=] {
      return RunList<v1::Gateway, v1::ListGatewaysRequest,
                     v1::ListGatewaysResponse>(
          env, "ListGateways", *request, *pages,
          &v1::AdminService::Stub::ListGateways,
          &v1::ListGatewaysResponse::gateways, "gateways", &GatewaysTable);
    });
  }
  {
    auto pages = std::make_shared<PageFlags>();
    auto request = std::make_shared<v1::ListPendingEventsRequest>();
    auto kind = std::make_shared<std::string>("any");
    CLI::App* list = AddList(app, "events",
                             "List unacknowledged grant and notification "
                             "events",
                             pages.get());
    list->add_option("--gateway", *request->mutable_gateway_id(),
                     "Only this gateway identity");
    list->add_option("--kind", *kind, "any, grant or notification")
        ->check(CLI::IsMember({"any", "grant", "notification"}));
    SetAction(list, env, [=] {
      v1::ListPendingEventsRequest copy = *request;
      copy.set_kind(*kind == "grant"          ? v1::EVENT_KIND_GRANT
                    : *kind == "notification" ? v1::EVENT_KIND_NOTIFICATION
                                              : v1::EVENT_KIND_UNSPECIFIED);
      return RunList<v1::PendingEvent, v1::ListPendingEventsRequest,
                     v1::ListPendingEventsResponse>(
          env, "ListPendingEvents", copy, *pages,
          &v1::AdminService::Stub::ListPendingEvents,
          &v1::ListPendingEventsResponse::events, "events", &EventsTable);
    });
  }
}

}  // namespace

void AddInspectCommands(CLI::App& app, CommandEnv* env) {
  AddFilteredList<v1::Lock, v1::ListLocksRequest, v1::ListLocksResponse>(
      app, env, "locks", "List held locks", "ListLocks",
      &v1::AdminService::Stub::ListLocks, &v1::ListLocksResponse::locks,
      &LocksTable);
  AddFilteredList<v1::Waiter, v1::ListWaitersRequest, v1::ListWaitersResponse>(
      app, env, "waiters", "List blocked lock requests in queue order",
      "ListWaiters", &v1::AdminService::Stub::ListWaiters,
      &v1::ListWaitersResponse::waiters, &WaitersTable);
  AddFilteredList<v1::Share, v1::ListSharesRequest, v1::ListSharesResponse>(
      app, env, "shares", "List share reservations", "ListShares",
      &v1::AdminService::Stub::ListShares, &v1::ListSharesResponse::shares,
      &SharesTable);
  AddOtherLists(app, env);
}

}  // namespace lockwarden::cli

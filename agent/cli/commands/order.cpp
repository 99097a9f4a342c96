// `order submit | attach | status | wait`: one CertCentral order by hand.
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "ca/client_factory.hpp"
#include "ca/order_file.hpp"
#include "ca/order_flow.hpp"
#include "ca/poll_schedule.hpp"
#include "base/duration.hpp"
#include "base/errors.hpp"
#include "base/stop.hpp"
#include "base/files.hpp"
#include "base/secret.hpp"
#include "qscd/api/csr.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

namespace {

using nlohmann::json;

json requests_json(const std::vector<api::RequestRef>& requests) {
  json out = json::array();
  for (const auto& request : requests) {
    json entry = {{"id", request.id}, {"status", std::string(to_string(request.status))}};
    if (!request.type.empty()) entry["type"] = request.type;
    out.push_back(entry);
  }
  return out;
}

json order_json(const api::OrderInfo& order) {
  // Order ids are numbers in every document (`jobs`, `provision`, `renew` too).
  json id = order.id;
  if (!order.id.empty() && order.id.find_first_not_of("0123456789") == std::string::npos && order.id.size() < 19) id = std::stoll(order.id);
  json out = {{"order_id", id}, {"status", std::string(to_string(order.status))}, {"product", order.product_name_id},
              {"requests", requests_json(order.requests)}};
  out["certificate_id"] = order.certificate_id ? json(*order.certificate_id) : json(nullptr);
  if (!order.common_name.empty()) out["common_name"] = order.common_name;
  if (!order.valid_till.empty()) out["valid_till"] = order.valid_till;
  return out;
}

std::string order_text(const api::OrderInfo& order) {
  std::string text = "order " + order.id + ": " + std::string(to_string(order.status));
  if (!order.product_name_id.empty()) text += " (" + order.product_name_id + ")";
  if (order.certificate_id) text += "\ncertificate " + *order.certificate_id;
  if (!order.common_name.empty()) text += "\ncommon name " + order.common_name;
  if (!order.valid_till.empty()) text += "\nvalid till " + order.valid_till;
  return text + "\n";
}

OrderFlow flow_for(Context& context, api::Client& client) {
  return OrderFlow(client, [&context](const std::string& line) { context.log.progress(line); });
}

struct SubmitOptions {
  std::string product;
  std::string csr_file;
  std::string order_file;
  bool dry_run = false;
  bool approve = false;
};

void submit(Context& context, const SubmitOptions& options) {
  api::OrderRequest request = order_request_from_file(options.product, options.order_file);
  if (!options.csr_file.empty()) {
    request.certificate.csr = read_input_file(options.csr_file, "--csr");
    api::default_common_name(request, api::inspect_csr(request.certificate.csr, "--csr").common_name);
  }
  api::validate(request, std::chrono::system_clock::now());

  if (options.dry_run) {
    json body = api::redacted(request);
    context.set_result({{{"dry_run", true}, {"method", "POST"}, {"path", "/order/certificate/" + request.product}, {"body", body}},
                        "POST /order/certificate/" + request.product + "\n" + body.dump(2, ' ', false, json::error_handler_t::replace) + "\n"});
    return;
  }
  api::Client client = make_api_client(context.ca_settings());
  OrderFlow flow = flow_for(context, client);
  api::SubmitResult placed = client.submit_order(request).value_or_throw();
  context.log.progress("order " + placed.order_id + " placed");
  if (options.approve) flow.approve_pending(placed.order_id, placed.requests, "approved by qscd-agent --approve");
  api::OrderInfo order = client.order_info(placed.order_id).value_or_throw();
  json out = order_json(order);
  out["placed_requests"] = requests_json(placed.requests);
  context.set_result({out, order_text(order)});
}

struct AttachOptions {
  std::string order_id;
  std::string csr_file;
  std::string init_code_source;
  bool approve = false;
};

void attach(Context& context, const AttachOptions& options) {
  AttachRequest request;
  request.csr_pem = read_input_file(options.csr_file, "--csr");
  api::inspect_csr(request.csr_pem, "--csr");
  api::SecretBytes init_code;
  if (!options.init_code_source.empty()) init_code = read_secret(options.init_code_source, "init code", "--init-code-source");
  request.init_code = init_code.bytes();
  api::Client client = make_api_client(context.ca_settings());
  OrderFlow flow = flow_for(context, client);
  const Attached attached = flow.attach(options.order_id, request);
  if (options.approve && attached.answer) {
    flow.approve_pending(options.order_id, attached.answer->requests, "approved by qscd-agent --approve");
  }
  context.log.progress("order " + options.order_id + ": CSR attached (" + std::string(to_string(attached.action)) + ")");
  api::OrderInfo after = client.order_info(options.order_id).value_or_throw();
  json out = order_json(after);
  out["action"] = std::string(to_string(attached.action));
  context.set_result({out, order_text(after)});
}

void status(Context& context, const std::string& order_id) {
  api::Client client = make_api_client(context.ca_settings());
  api::OrderInfo order = client.order_info(order_id).value_or_throw();
  context.set_result({order_json(order), order_text(order)});
}

struct WaitOptions {
  std::string order_id;
  std::string timeout = "1h";
  std::string interval;
  bool approve = false;
};

// Looks on the waiting schedule (ca/poll_schedule) until the order is issued, refused, or the
// timeout comes: the same look and approval rules as a job's CA_WORKING step.
void wait(Context& context, const WaitOptions& options) {
  using std::chrono::seconds;
  const seconds timeout = parse_duration(options.timeout, "--timeout");
  PollSchedule schedule;
  if (!options.interval.empty()) {
    schedule.cap = parse_duration(options.interval, "--interval");
    if (*schedule.cap < seconds(1)) throw UsageError("--interval", "must be at least 1 s");
  }
  api::Client client = make_api_client(context.ca_settings());
  OrderFlow flow = flow_for(context, client);
  const auto started = std::chrono::steady_clock::now();
  for (;;) {
    const OrderLook look = flow.look(options.order_id, LookOptions{options.approve, {}});
    const auto waited = std::chrono::duration_cast<seconds>(std::chrono::steady_clock::now() - started);
    if (look.kind == OrderLook::Kind::issued) {
      context.log.progress("order " + options.order_id + ": issued after " + format_duration(waited));
      context.set_result({order_json(look.order), order_text(look.order)});
      return;
    }
    if (look.kind == OrderLook::Kind::refused) throw CaError(look.detail);
    const std::string status(to_string(look.order.status));
    const seconds left = timeout - waited;
    if (left <= seconds(0)) {
      context.log.progress("order " + options.order_id + " is still " + status + " after " + format_duration(waited) +
                           "; run the same command again to keep waiting");
      CommandResult result{order_json(look.order), order_text(look.order), CommandStatus::waiting_on_ca};
      result.json["waited_seconds"] = waited.count();
      context.set_result(std::move(result));
      return;
    }
    const seconds next = std::min(schedule.next(waited), left);
    context.log.progress("order " + options.order_id + ": " + status + ", waited " + format_duration(waited) +
                         ", next look in " + format_duration(next) + " (" + look.detail + ")");
    if (!sleep_unless_stopped(next)) {
      // The order is CertCentral's to keep working on: the same command waits on.
      CommandResult result{order_json(look.order), order_text(look.order), CommandStatus::stopped};
      result.json["waited_seconds"] = waited.count();
      result.json["stopped_by"] = stop_signal_name();
      context.set_result(std::move(result));
      return;
    }
  }
}

}  // namespace

void add_order(CLI::App& app, Context& context) {
  CLI::App* order = app.add_subcommand("order", "place and follow one CertCentral order");
  order->require_subcommand(1);

  auto submit_options = std::make_shared<SubmitOptions>();
  CLI::App* submit_cmd = order->add_subcommand("submit", "place an order (the CSR goes with it; QSCD orders get it at pickup)");
  submit_cmd->add_option("--product", submit_options->product, "CertCentral product name_id, e.g. pkio_private_services_server")->required();
  submit_cmd->add_option("--csr", submit_options->csr_file, "PEM CSR file");
  submit_cmd->add_option("--order-file", submit_options->order_file, "JSON order body (organization, validity, ...), as CertCentral documents it");
  submit_cmd->add_flag("--dry-run", submit_options->dry_run, "print the request body and send nothing");
  submit_cmd->add_flag("--approve", submit_options->approve, "approve the order's request (the API key's user must be allowed to)");
  submit_cmd->callback([&context, submit_options] { submit(context, *submit_options); });

  auto attach_options = std::make_shared<AttachOptions>();
  CLI::App* attach_cmd = order->add_subcommand("attach", "give an order a CSR: reissue an issued order, or the pickup step of a QSCD order");
  attach_cmd->add_option("ORDER_ID", attach_options->order_id, "CertCentral order id")->required();
  attach_cmd->add_option("--csr", attach_options->csr_file, "PEM CSR file")->required();
  attach_cmd->add_option("--init-code-source", attach_options->init_code_source, "where the QSCD init code comes from (prompt, fd:N, file:PATH, env:NAME)");
  attach_cmd->add_flag("--approve", attach_options->approve, "approve the reissue request");
  attach_cmd->callback([&context, attach_options] { attach(context, *attach_options); });

  auto status_id = std::make_shared<std::string>();
  CLI::App* status_cmd = order->add_subcommand("status", "show an order");
  status_cmd->add_option("ORDER_ID", *status_id, "CertCentral order id")->required();
  status_cmd->callback([&context, status_id] { status(context, *status_id); });

  auto wait_options = std::make_shared<WaitOptions>();
  CLI::App* wait_cmd = order->add_subcommand("wait", "wait until an order is issued (exit 5 when the timeout comes first)");
  wait_cmd->add_option("ORDER_ID", wait_options->order_id, "CertCentral order id")->required();
  wait_cmd->add_option("--timeout", wait_options->timeout, "how long to wait: seconds or N s/m/h/d (default 1h; 0 looks once)");
  wait_cmd->add_option("--interval", wait_options->interval, "the longest time between looks (default: a tenth of the time waited, at least 3 s, at most 1 h)");
  wait_cmd->add_flag("--approve", wait_options->approve, "approve the order's pending requests (new, reissue, duplicate) when the API key may");
  wait_cmd->callback([&context, wait_options] { wait(context, *wait_options); });
}

}  // namespace qscd::agent::cmd
